"""The input limits both codecs enforce before doing work on hostile bytes."""

# A v1 document is a few hundred bytes; a megabyte leaves room for any formatting while
# keeping the cost of a hostile file bounded.
MAX_DOCUMENT_BYTES = 1 << 20

# A v1 document is one flat object. Deeper input is refused long before the interpreter's
# recursion limit, so nesting cannot turn into a crash.
MAX_DEPTH = 32

# The largest u64, 18446744073709551615, has 20 digits; anything longer is out of range
# whatever its value, so it is never converted (Python's int() is quadratic in the digits).
MAX_INTEGER_DIGITS = 20
