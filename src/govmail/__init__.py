"""govmail: orchestration around the govmail Ansible content (lab, accounts, backups, drills)."""

__version__ = "0.1.0"
