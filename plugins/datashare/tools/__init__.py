"""The command line and the demo: ``datashare`` (:mod:`.cli`), :mod:`.demo` and :mod:`.seed`."""
