"""Where a withdrawal's money goes (收款账户): a bank card, a WeChat 零钱 or an Alipay account."""

import re
import unicodedata
from dataclasses import dataclass
from typing import Final

METHODS: Final = ("bank", "wechat", "alipay")
NAME_CHARS_MAX: Final = 40
BANK_CHARS_MAX: Final = 60
ACCOUNT_CHARS_MAX: Final = 64
# Bank card numbers, phone numbers, e-mail addresses and WeChat openids all fit; spaces do not
# (a card number is written without them). The same text is the API's JSON Schema pattern.
ACCOUNT_PATTERN: Final = "^[0-9A-Za-z@._+-]{1,64}$"
_ACCOUNT = re.compile(ACCOUNT_PATTERN)
_KEYS: Final = frozenset({"method", "name", "account", "bank"})
MASK_STARS_MAX: Final = 4
SHOWN_CHARS: Final = 4


@dataclass(frozen=True, slots=True)
class Payee:
    """A withdrawal's payee: how it is paid, to whom, to which account (and bank)."""

    method: str  # one of METHODS
    name: str  # the account holder's name (收款人姓名): the bank pays only if it matches
    account: str
    bank: str = ""  # the bank's name (开户行), for method "bank" only


def _has_control(text: str) -> bool:
    return any(unicodedata.category(char)[0] == "C" for char in text)


def _text(value: object, field: str, chars_max: int) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= chars_max:
        raise ValueError(f"'{field}' must be a string of 1 to {chars_max} characters")
    if _has_control(value):
        raise ValueError(f"'{field}' must not hold control characters")
    if value != value.strip():
        raise ValueError(f"'{field}' must not start or end with spaces")
    return value


def parse_payee(value: object) -> Payee:
    """The payee a JSON object names; ValueError with a one-line message if it is malformed."""
    if not isinstance(value, dict):
        raise ValueError("the payee must be a JSON object")
    unknown = sorted(str(key) for key in value if key not in _KEYS)
    if unknown:
        raise ValueError(f"unknown payee field(s): {', '.join(unknown)}")
    method = value.get("method")
    if method not in METHODS:
        raise ValueError(f"'method' must be one of {', '.join(METHODS)}")
    name = _text(value.get("name"), "name", NAME_CHARS_MAX)
    account = value.get("account")
    if not isinstance(account, str) or _ACCOUNT.fullmatch(account) is None:
        raise ValueError(
            f"'account' must be 1 to {ACCOUNT_CHARS_MAX} letters, digits or @._+- characters"
        )
    bank = value.get("bank", "")
    if method == "bank":
        bank = _text(bank, "bank", BANK_CHARS_MAX)
    elif bank != "":
        raise ValueError("'bank' is for method bank only")
    return Payee(str(method), name, account, bank)


def payee_json(payee: Payee) -> dict[str, str]:
    """The payee as the JSON object parse_payee reads."""
    found = {"method": payee.method, "name": payee.name, "account": payee.account}
    if payee.bank:
        found["bank"] = payee.bank
    return found


def masked_account(account: str) -> str:
    """The account with all but its last 4 characters hidden, for lists support staff see."""
    if len(account) <= SHOWN_CHARS:
        return "*" * MASK_STARS_MAX
    # At most 4 stars: a card number's length helps nobody who reads the list.
    stars = min(len(account) - SHOWN_CHARS, MASK_STARS_MAX)
    return "*" * stars + account[-SHOWN_CHARS:]
