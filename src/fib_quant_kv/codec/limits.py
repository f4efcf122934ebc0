"""The input limits both codecs enforce before doing work on hostile bytes."""

from fib_quant_kv.errors import DecodeError

# A v1 document is a few hundred bytes; a megabyte leaves room for any formatting while
# keeping the cost of a hostile file bounded.
MAX_DOCUMENT_BYTES = 1 << 20

# A v1 document is one flat object. Deeper input is refused long before the interpreter's
# recursion limit, so nesting cannot turn into a crash.
MAX_DEPTH = 32

# The largest u64, 18446744073709551615, has 20 digits; anything longer is out of range
# whatever its value, so it is never converted (Python's int() is quadratic in the digits).
MAX_INTEGER_DIGITS = 20


def check_size(data: bytes) -> None:
    """Refuse a document larger than MAX_DOCUMENT_BYTES before any of it is parsed."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise DecodeError(
            f"document of {len(data)} bytes is larger than the {MAX_DOCUMENT_BYTES}-byte limit"
        )
