"""An all-in-one OpenStack (Debian 12, Zed) in one systemd-nspawn machine on this host.

``python -m migrate.rehearsal.testcloud up|down|status`` (as root). See docs/testcloud.md.
"""
