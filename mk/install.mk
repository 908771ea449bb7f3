# mk/install.mk: `make install` / `make uninstall`, with PREFIX (default
# /usr/local) and DESTDIR (staging root for packagers), e.g.
#   make install PREFIX=/usr DESTDIR=/tmp/stage
# Installs bin/punchd, share/man/man1/punchd.1,
# share/doc/punchd/config.sample.json and lib/systemd/system/punchd.service
# (its ExecStart and config paths rewritten to BINDIR and SYSCONFDIR); and,
# when the client library is part of the build (mk/client.mk), bin/punch,
# lib/libpunch.a and include/punch.h. The config itself is never installed
# (it would clobber an admin's): copy the sample to
# $(SYSCONFDIR)/punchd/config.json. See docs/deploy.md.

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/punchd
UNITDIR ?= $(PREFIX)/lib/systemd/system
# Where the unit expects the config: /etc whatever the PREFIX, as systemd
# units conventionally do.
SYSCONFDIR ?= /etc

# The client pieces are installed only when their rules exist, so
# `make install` works before and after the client library lands.
INSTALL_CLIENT := $(if $(wildcard mk/client.mk),1,)
INSTALL_CLIENT_DEPS := $(if $(INSTALL_CLIENT),$(BUILD)/punch $(BUILD)/libpunch.a include/punch.h,)

.PHONY: install uninstall

install: $(BUILD)/punchd $(INSTALL_CLIENT_DEPS) dist/punchd.1 dist/punchd.service dist/config.sample.json
	install -d '$(DESTDIR)$(BINDIR)' '$(DESTDIR)$(MANDIR)/man1' '$(DESTDIR)$(DOCDIR)' '$(DESTDIR)$(UNITDIR)'
	install -m 0755 $(BUILD)/punchd '$(DESTDIR)$(BINDIR)/punchd'
	install -m 0644 dist/punchd.1 '$(DESTDIR)$(MANDIR)/man1/punchd.1'
	install -m 0644 dist/config.sample.json '$(DESTDIR)$(DOCDIR)/config.sample.json'
	sed -e 's|/usr/local/bin/punchd|$(BINDIR)/punchd|g' -e 's|/etc/punchd/|$(SYSCONFDIR)/punchd/|g' \
	    dist/punchd.service > '$(DESTDIR)$(UNITDIR)/punchd.service.tmp'
	chmod 0644 '$(DESTDIR)$(UNITDIR)/punchd.service.tmp'
	mv -f '$(DESTDIR)$(UNITDIR)/punchd.service.tmp' '$(DESTDIR)$(UNITDIR)/punchd.service'
ifneq ($(INSTALL_CLIENT),)
	install -d '$(DESTDIR)$(LIBDIR)' '$(DESTDIR)$(INCLUDEDIR)'
	install -m 0755 $(BUILD)/punch '$(DESTDIR)$(BINDIR)/punch'
	install -m 0644 $(BUILD)/libpunch.a '$(DESTDIR)$(LIBDIR)/libpunch.a'
	install -m 0644 include/punch.h '$(DESTDIR)$(INCLUDEDIR)/punch.h'
endif

uninstall:
	rm -f '$(DESTDIR)$(BINDIR)/punchd' '$(DESTDIR)$(MANDIR)/man1/punchd.1' \
	      '$(DESTDIR)$(DOCDIR)/config.sample.json' '$(DESTDIR)$(UNITDIR)/punchd.service' \
	      '$(DESTDIR)$(BINDIR)/punch' '$(DESTDIR)$(LIBDIR)/libpunch.a' '$(DESTDIR)$(INCLUDEDIR)/punch.h'
	rmdir '$(DESTDIR)$(DOCDIR)' 2>/dev/null || true
