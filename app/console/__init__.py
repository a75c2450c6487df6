"""The web console: server-rendered pages for reviewers, operators and auditors under /ui/."""
