"""Tests of fib-quant-kv: vectors, rules, codecs, properties, the CLI and hostile input."""
