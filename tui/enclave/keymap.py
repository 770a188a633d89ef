"""Checks for the ``[keys]`` table: key names Textual can match, and no key bound twice.

Textual accepts any string as a key and, when a remapped key is already taken, drops one of
the two bindings without a word; a typo such as ``hyper+banana`` is then a key that never
fires. These checks refuse both, with one line naming the key and the actions.
"""

from __future__ import annotations

from textual.keys import KEY_NAME_REPLACEMENTS, KEY_TO_UNICODE_NAME, Keys, _character_to_key

MODIFIERS = frozenset({"ctrl", "alt", "shift", "super", "meta", "hyper"})
NAMED_KEYS = (
    frozenset(key.value.rsplit("+", 1)[-1] for key in Keys)
    | frozenset(KEY_TO_UNICODE_NAME)
    | frozenset(KEY_NAME_REPLACEMENTS.values())
    | {"space", "comma", "colon", "semicolon", "apostrophe", "asterisk", "ampersand", "tilde"}
)
GLOBAL_SCOPE = "app"  # the app's bindings (ctrl+q) answer on every screen


def normal_key(key: str) -> str | None:
    """The key as Textual names it (``?`` → ``question_mark``), or None if it can never match."""
    *modifiers, base = key.strip().split("+") if key.strip() != "+" else ["+"]
    if not base or any(m not in MODIFIERS for m in modifiers) or len(set(modifiers)) != len(modifiers):
        return None
    if len(base) == 1:
        base = _character_to_key(base)
    elif base not in NAMED_KEYS:
        return None
    return "+".join([*modifiers, base])


def keymap_problem(keys: dict[str, str], defaults: dict[str, tuple[str, str]]) -> str | None:
    """One line naming the first unknown key or doubly bound key in ``keys`` (binding id → keys),
    given each id's (scope, default keys); None if the keymap is sound."""
    for binding_id, value in keys.items():
        for key in value.split(","):
            if normal_key(key) is None:
                return f'[keys] {binding_id!r}: {key.strip()!r} is not a key name; write keys like "ctrl+n", "alt+right", "f8" or "pageup"'
    every_scope = {scope for scope, _ in defaults.values()}
    taken: dict[tuple[str, str], str] = {}
    for binding_id, (scope, default) in defaults.items():
        for key in keys.get(binding_id, default).split(","):
            name = normal_key(key) or key.strip()
            for where in every_scope if scope == GLOBAL_SCOPE else (scope,):
                other = taken.setdefault((where, name), binding_id)
                if other != binding_id:
                    return f"[keys] {name!r} is bound to both {other!r} and {binding_id!r}; give one of them another key"
    return None
