"""`python -m fib_quant_kv`: the same command line as `fib-quant-kv`."""

from fib_quant_kv.cli import main

raise SystemExit(main())
