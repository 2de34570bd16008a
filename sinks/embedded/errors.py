"""Errors of the embedded store, answered the way ClickHouse answers them.

>>> err = StoreError(62, "Empty query")
>>> err.status, err.body
(400, 'Code: 62. DB::Exception: Empty query. (SYNTAX_ERROR)')
"""

from __future__ import annotations

import re

# ClickHouse error names for the codes the store raises itself.
_ERROR_NAMES = {
    33: "CANNOT_READ_ALL_DATA",
    36: "BAD_ARGUMENTS",
    48: "NOT_IMPLEMENTED",
    62: "SYNTAX_ERROR",
    78: "UNKNOWN_TYPE_OF_QUERY",
    89: "UNKNOWN_COMPRESSION_METHOD",
    115: "UNKNOWN_SETTING",
    164: "READONLY",
    236: "ABORTED",
    271: "CANNOT_DECOMPRESS",
    358: "INTO_OUTFILE_NOT_ALLOWED",
    497: "ACCESS_DENIED",
    516: "AUTHENTICATION_FAILED",
    1002: "UNKNOWN_EXCEPTION",
}

# HTTP status per ClickHouse error code, as ClickHouse's exceptionCodeToHTTPStatus maps them.
_STATUS_GROUPS: dict[int, tuple[int, ...]] = {
    401: (194,),
    403: (192, 193, 516, 512, 497),
    400: (36, 427, 6, 25, 26, 38, 41, 72, 441, 675, 676, 27, 376, 15, 44, 37, 123, 8, 167, 168, 223, 62, 117,
          53, 321),
    404: (60, 46, 47, 50, 56, 81, 115, 152, 63, 73, 336, 78, 511),
    413: (229,),
    501: (48,),
    503: (209, 76, 439),
    411: (381,),
    408: (159,),
    415: (779,),
}  # fmt: skip
_HTTP_STATUS = {code: status for status, codes in _STATUS_GROUPS.items() for code in codes}


class StoreError(Exception):
    """An error answered the way ClickHouse answers it: ``Code: N. DB::Exception: ...``."""

    def __init__(self, code: int, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status or _HTTP_STATUS.get(code, 500)
        if message.startswith("Code: "):
            self.body = message
        else:
            self.body = f"Code: {code}. DB::Exception: {message}. ({_ERROR_NAMES.get(code, 'UNKNOWN_EXCEPTION')})"

    @classmethod
    def from_engine(cls, exc: Exception) -> StoreError:
        """Wrap a chdb exception, whose text already carries ClickHouse's code and message."""
        text = str(exc).strip()
        start = text.find("Code: ")
        match = re.match(r"Code: (\d+)\.", text[start:]) if start >= 0 else None
        if match is None:
            return cls(1002, text or type(exc).__name__)
        return cls(int(match.group(1)), text[start:])
