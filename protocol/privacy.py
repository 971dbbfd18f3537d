"""Masking of patient names for public screens and printed tickets."""
import re

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


def mask_name(full_name: str | None) -> str:
    """Return the form of a name that may appear on a public screen.

    Chinese names keep the first and last character ("张三丰" -> "张*丰", "张三" -> "张*");
    Latin names keep the initial of the first word and the initial of the last ("John Smith" -> "J*** S.").
    A full name never comes out of this function unchanged unless it is a single character.
    """
    name = (full_name or "").strip()
    if not name:
        return ""
    if _CJK.search(name):
        chars = [c for c in name if not c.isspace()]
        if len(chars) <= 2:
            return chars[0] + "*"
        return chars[0] + "*" * (len(chars) - 2) + chars[-1]
    words = name.split()
    first = words[0]
    masked_first = first[0] + "*" * max(len(first) - 1, 1)
    if len(words) == 1:
        return masked_first
    return f"{masked_first} {words[-1][0]}."
