"""The input limits both codecs enforce before doing work on hostile bytes."""

from fib_quant_kv.errors import DecodeError, Rule

# A v1 document is a few hundred bytes; a megabyte leaves room for any formatting while
# keeping the cost of a hostile file bounded.
MAX_DOCUMENT_BYTES = 1 << 20

# A v1 document is one flat object. Deeper input is refused long before the interpreter's
# recursion limit, so nesting cannot turn into a crash.
MAX_DEPTH = 32

# The most keys a document may have for every violation to be named: a contract's fields and a
# few misspelt ones. Past it a document is refused at its first key no contract has (the CBOR
# reader stops there, unread), which keeps a hostile document of many keys cheap to refuse.
SMALL_DOCUMENT = 32

# The largest u64, 18446744073709551615, has 20 digits; anything longer is out of range
# whatever its value, so it is never converted (Python's int() is quadratic in the digits).
MAX_INTEGER_DIGITS = 20


# The decoding stage's rules, shared by both codecs: the first checks a document meets.
MALFORMED = Rule(
    "decode.malformed",
    ("decode",),
    1,
    "The bytes are exactly one well-formed JSON text or CBOR item: nothing truncated or after "
    "it, valid UTF-8 without a byte order mark, no raw control characters or lone surrogates.",
    breaks='{"schema_version": "fib_quant_kv_tensor_shape_v1",',
)
DATA_MODEL = Rule(
    "decode.data_model",
    ("decode",),
    1,
    "Values stay within the JSON data model: no NaN or Infinity; in CBOR no tags, byte "
    "strings, non-text keys, indefinite lengths, or simple values other than false, true, null.",
    breaks='{"schema_version": NaN}',
)
DUPLICATE_KEY = Rule(
    "decode.duplicate_key",
    ("decode",),
    1,
    "No key appears twice in an object or map, even with the same value.",
    breaks='{"batch": 1, "batch": 1}',
)
SIZE_LIMIT = Rule(
    "decode.size_limit",
    ("decode",),
    1,
    f"A document is at most {MAX_DOCUMENT_BYTES} bytes; a larger one is refused unread.",
)
DEPTH_LIMIT = Rule(
    "decode.depth_limit",
    ("decode",),
    1,
    f"Values nest at most {MAX_DEPTH} levels deep (a v1 document is one flat object).",
    breaks="[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),
)
DECODE_RULES = (MALFORMED, DATA_MODEL, DUPLICATE_KEY, SIZE_LIMIT, DEPTH_LIMIT)


def check_size(data: bytes) -> None:
    """Refuse a document larger than MAX_DOCUMENT_BYTES before any of it is parsed."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise DecodeError(
            f"document of {len(data)} bytes is larger than the {MAX_DOCUMENT_BYTES}-byte limit",
            rule=SIZE_LIMIT.id,
        )
