"""Keeping personal data out of logs: phone numbers are masked in every log line."""

from __future__ import annotations

import logging
import re

# E.164 and other long digit runs that may be phone numbers (+15551234567, 4155550100).
_NUMBER = re.compile(r"\+?\d[\d\- ]{6,}\d")


def mask_number(number: str) -> str:
    """A phone number safe for logs: only its last two digits."""
    digits = re.sub(r"\D", "", number)
    return f"***{digits[-2:]}" if len(digits) > 2 else "***"


def mask_numbers_in(text: str) -> str:
    """The text with every phone-number-like run of digits masked."""
    return _NUMBER.sub(lambda match: mask_number(match.group()), text)


class MaskPhoneNumbers(logging.Filter):
    """A logging filter that masks phone numbers in a record's final message."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message with numbers masked; never drops a record."""
        message = record.getMessage()
        masked = mask_numbers_in(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def install(handlers: list[logging.Handler]) -> None:
    """Put the mask on each handler once."""
    for handler in handlers:
        if not any(isinstance(f, MaskPhoneNumbers) for f in handler.filters):
            handler.addFilter(MaskPhoneNumbers())
