"""What runs on top of the domains, through their public names only: `clipgate demo` (demo.py),
`clipgate bench perf` (perf.py) and `clipgate bench quality` (quality/)."""
