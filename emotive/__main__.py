from emotive.cli import entry

entry()
