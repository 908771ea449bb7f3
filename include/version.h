/* version: punchd's release version. */
#ifndef PUNCHD_VERSION_H
#define PUNCHD_VERSION_H
#define PUNCHD_VERSION "0.1.0"
#endif
