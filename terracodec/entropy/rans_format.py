"""The rANS stream format's numbers, in one place (contract: docs/DESIGN.md section 1).

Why a module of its own: the API and stream layout (`rans.py`, `rans_stream.py`), the three
back-ends (`rans_numba*.py`, `rans_torch.py`, `kernels/rans.py`), the CDF tables (`cdf.py`) and
the temporal coder's headerless streams must agree on these values bit for bit, or streams stop
decoding. Copies in each module could drift apart one by one; here a change is one edit. Most
of them are part of the bytes: changing one of those needs a new `FORMAT_VERSION` (and new
golden hashes, tests/test_golden.py). Plain integers and strings only (no numpy, no torch):
the numba kernels read them as compile-time constants and the triton kernels wrap them in
`tl.constexpr`.
numba's on-disk cache is keyed on the kernel's own file, not on this one: after changing a
number here, touch `rans_numba*.py` (tests/test_rans.py compares numba with the torch
reference, which reads these values live, so a stale cache fails the tests, not silently).
"""

from __future__ import annotations

# --------------------------------------------------------------------------- arithmetic

PRECISION = 16  # every CDF row ends at 1 << PRECISION; frequencies are in [1, 1 << PRECISION]
PROB_SCALE = 1 << PRECISION
SLOT_MASK = PROB_SCALE - 1  # state & SLOT_MASK: the decoder's slot in [0, PROB_SCALE)
RANS_L_BITS = 31
RANS_L = 1 << RANS_L_BITS  # states live in [RANS_L, RANS_L << WORD_BITS); every lane starts here
WORD_BITS = 32  # renormalisation words: u32, little-endian in the stream
WORD_BYTES = WORD_BITS // 8
WORD_DTYPE = f"<u{WORD_BYTES}"  # the words' numpy dtype in the stream
WORD_MASK = (1 << WORD_BITS) - 1
#: The encoder emits a word before coding a symbol of frequency f when state >= f << EMIT_SHIFT
#: (tested as (state >> EMIT_SHIFT) >= f, which cannot overflow at f = PROB_SCALE).
EMIT_SHIFT = RANS_L_BITS + WORD_BITS - PRECISION

# --------------------------------------------------------------------------- symbols and tables

SYMBOL_MIN, SYMBOL_MAX = -(1 << 31), (1 << 31) - 1  # symbols and offsets are int32
#: Row r's escape symbol is `cdf_lengths[r] - ESCAPE_FROM_END` (the row's last symbol): a table
#: value outside [0, escape) is coded as the escape and its exact value goes to the escape
#: section, as 2 * (v - escape) when v >= escape and -2 * v - 1 when v < 0 (one varint each).
ESCAPE_FROM_END = 2
MIN_CDF_LENGTH = ESCAPE_FROM_END  # cdf[0] = 0 and the escape's end: a row of escapes only

# --------------------------------------------------------------------------- layout

FORMAT_VERSION = 1  # the u8 that opens a headered stream
DEFAULT_LANES = 4
DEFAULT_CHUNK_SYMBOLS = 1 << 16
#: Below this many symbols per extra lane, a lane's final state (up to 9 bytes) costs more than
#: its instruction-level parallelism saves: small streams (a hyperprior, one ELIC group of one
#: tile) get fewer lanes by default.
SYMBOLS_PER_LANE = 1 << 12
MAX_LANES = 256
MAX_CHUNK_SYMBOLS = 1 << 30
MAX_VARINT_BYTES = 9  # unsigned LEB128 of 63-bit values: every field fits a signed int64

#: The header's varints after the version byte, in this order (then the word count of every
#: chunk, the final state - RANS_L of every lane, the words, the escape section).
HEADER_FIELDS = ("symbols", "lanes", "chunk_symbols", "escape_bytes")
#: `header="none"` streams leave out the version byte and these leading fields (the decoder is
#: given them); they start at the escape-section length.
HEADERLESS_OMITS = HEADER_FIELDS[:3]
HEADER_MODES = ("full", "none")

# --------------------------------------------------------------------------- back-end status

#: Per-chunk status codes of the compiled kernels (numba, triton); 0 means fine.
STATUS_OK = 0
STATUS_BAD_INDEX = 1  # a table row outside [0, rows): the caller's error (ValueError)
STATUS_WORDS_OVERRUN = 2
STATUS_WORDS_LEFT = 3
STATUS_BAD_FINAL_STATE = 4
#: What a corrupt stream's status means (raised as CorruptStreamError).
CORRUPT_MESSAGES = {
    STATUS_WORDS_OVERRUN: "a chunk needs more words than it holds",
    STATUS_WORDS_LEFT: "words left over",
    STATUS_BAD_FINAL_STATE: "a lane did not end in the initial state",
}
