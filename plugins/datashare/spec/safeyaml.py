"""Reading a hand-written YAML file that may be hostile or careless: bounded, strict, and never a traceback.

One bad file must never cost more than its own error message. So a file is read only if it is a
regular file no larger than the caller's limit (checked on the open descriptor before reading it whole,
so a FIFO, a device or a file swapped in between cannot block or exhaust the reader); its bytes must
be UTF-8; it must hold exactly one YAML document, loaded with a safe loader (libyaml's C parser when
PyYAML was built with it: about eight times faster than the pure-Python one) that also refuses

* a key given twice in one mapping, at any depth (YAML says keys are unique; PyYAML would keep the
  last one silently, so ``classification: shared`` then ``classification: open`` would publish as open);
* aliases (``*name``) and merge keys (``<<``): nothing in a config file needs them, and an alias graph
  that expands exponentially (the "billion laughs") is how a small file exhausts memory;
* tagged collections (``!!set``, ``!!omap``...): a spec is plain mappings, lists and scalars;
* nesting deeper than :data:`MAX_DEPTH`.

Every failure raises the caller's error class with the file, the line and the column where we know them.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml

from datashare.exceptions import DatashareError

MAX_DEPTH = 32
"""Deepest nesting of mappings and lists accepted (the specs use 5)."""

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"


_STR_TAG = "tag:yaml.org,2002:str"
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"


def _refuse(problem: str, node: yaml.Node) -> yaml.constructor.ConstructorError:
    return yaml.constructor.ConstructorError(None, None, problem, node.start_mark)


class _StrictLoader(_Base):
    """Safe loader that refuses duplicate keys, aliases, merge keys, tagged collections and deep nesting.

    The (C) parser composes the node tree; :meth:`strict_data` then builds plain dicts, lists and
    scalars from it in one walk (PyYAML's own constructors only for non-string scalars: numbers, booleans,
    null, dates), which is also about a third faster than PyYAML's generic construction.
    """

    def strict_data(self) -> Any:
        node = self.get_single_node()
        if node is None:
            return None
        self._seen: set[int] = set()
        self._path: list[str] = []
        return self._build(node, 0)

    def _build(self, node: yaml.Node, depth: int) -> Any:
        # Each node of a YAML tree is reached once; reaching one again means an alias points at it.
        if id(node) in self._seen:
            raise _refuse(
                "the value anchored here (&name) is used again through an alias (*name); aliases are not "
                "allowed: write the value out",
                node,
            )
        self._seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            return node.value if node.tag == _STR_TAG else self.construct_object(node, deep=True)
        if depth >= MAX_DEPTH:
            raise _refuse(f"nested deeper than {MAX_DEPTH} levels", node)
        if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ_TAG:
            items = []
            for index, child in enumerate(node.value):
                self._path.append(f"[{index}]")
                items.append(self._build(child, depth + 1))
                self._path.pop()
            return items
        if isinstance(node, yaml.MappingNode) and node.tag == _MAP_TAG:
            return self._build_mapping(node, depth)
        raise _refuse(f"the tag {node.tag!r} is not allowed: write a plain mapping or list", node)

    def _build_mapping(self, node: yaml.MappingNode, depth: int) -> dict[Any, Any]:
        mapping: dict[Any, Any] = {}
        key_nodes: dict[Any, yaml.Node] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                raise _refuse("merge keys (<<) are not allowed: write the keys out", key_node)
            if not isinstance(key_node, yaml.ScalarNode):
                raise _refuse("a key must be a plain value, not a list or a mapping", key_node)
            key = self._build(key_node, depth + 1)
            first = key_nodes.get(key)
            if first is not None:  # 1, 1.0 and true are one key to Python: also a duplicate
                field = ".".join([*self._path, str(key)]).replace(".[", "[")
                raise _refuse(
                    f"{field}: the key {key!r} appears twice in one mapping (lines {first.start_mark.line + 1} "
                    f"and {key_node.start_mark.line + 1}); keys must be unique",
                    key_node,
                )
            key_nodes[key] = key_node
            self._path.append(str(key))
            mapping[key] = self._build(value_node, depth + 1)
            self._path.pop()
        return mapping


def read_text(path: Path, *, max_bytes: int, error: type[DatashareError], what: str) -> str:
    """The UTF-8 text of a regular file of at most ``max_bytes``; anything else raises ``error``."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{path}: cannot read {what}: not a regular file")
        if info.st_size > max_bytes:
            raise error(f"{path}: {what} is {info.st_size:,} bytes; the limit is {max_bytes:,} bytes")
        chunks, left = [], max_bytes + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror}") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # it grew between the check and the read
        raise error(f"{path}: {what} is larger than the limit of {max_bytes:,} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise error(
            f"{path}: not UTF-8: byte 0x{data[exc.start]:02x} at line {line}, column {column} "
            f"({exc.reason}); save the file as UTF-8"
        ) from None
    return text.removeprefix("\ufeff")


def _where(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    return f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def load_yaml(text: str, *, source: str, error: type[DatashareError]) -> Any:
    """Load one YAML document strictly (see the module's docstring); ``source`` names the file in errors."""
    loader = _StrictLoader(text)
    try:
        return loader.strict_data()
    except yaml.MarkedYAMLError as exc:
        problem = exc.problem or "malformed"
        context = f" ({exc.context})" if exc.context and "single document" not in exc.context else ""
        if "expected a single document" in str(exc):
            problem = "holds more than one YAML document (a second '---'): one spec, one document"
        raise error(f"{source}: not valid YAML{_where(exc)}: {problem}{context}") from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow (NUL, other controls)
        line = text.count("\n", 0, exc.position) + 1
        character = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise error(f"{source}: not valid YAML at line {line}: character #x{character:04x} is not allowed") from None
    except yaml.YAMLError as exc:
        raise error(f"{source}: not valid YAML: {exc}") from None
    except (ValueError, OverflowError) as exc:  # e.g. a 30 February timestamp, an integer of 10,000 digits
        raise error(f"{source}: not valid YAML: {exc}") from None
    except RecursionError:  # the pure-Python parser (no libyaml) on deep nesting
        raise error(f"{source}: not valid YAML: nested deeper than the parser can follow") from None
    finally:
        loader.dispose()
