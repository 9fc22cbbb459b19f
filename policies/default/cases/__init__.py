"""Case files of the default pack for `cntrust policy test` (package data)."""
