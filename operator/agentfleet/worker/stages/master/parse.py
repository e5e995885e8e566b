"""Sub-tasks of a master issue, read from its Markdown checklist (pure).

A sub-task is a top-level checkbox item (`- [ ] Add the cart API`) or, when the issue has
no checkboxes, a top-level numbered item (`1. Add the cart API`). Indented lines below an
item are its description. A task declares what it touches with `files:` / `modules:`
(on its own line or in parentheses at the end of the item); those declarations are what
the independence check compares.

```markdown
- [ ] Cart API (files: src/cart/api.py, tests/test_cart_api.py)
- [ ] Checkout page
  modules: shop.checkout
  Render the checkout page from the cart.
```
"""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

_CHECKBOX = re.compile(r"^ {0,3}[-*+]\s+\[(?P<mark>[ xX])\]\s+(?P<text>\S.*)$")
_NUMBERED = re.compile(r"^ {0,3}\d{1,3}[.)]\s+(?P<text>\S.*)$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_DECLARATION = re.compile(
    r"(?P<kind>files?|paths?|modules?)\s*:\s*(?P<items>[^()\n]+)", re.IGNORECASE
)
_TRAILING_DECLARATION = re.compile(
    r"\s*[(\[]\s*(?:files?|paths?|modules?)\s*:[^()\[\]]*[)\]]\s*$", re.IGNORECASE
)
_ITEM = re.compile(r"[`'\"]?([^\s,;`'\"]+)[`'\"]?")


class SubTask(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    index: int
    """1-based position in the checklist; the stable key of the task."""
    title: str
    description: str = ""
    files: tuple[str, ...] = ()
    """Declared paths, normalised (no leading ./, no trailing /)."""
    modules: tuple[str, ...] = ()
    """Declared dotted modules."""
    done: bool = False
    """The checkbox was already ticked."""

    @property
    def resources(self) -> tuple[str, ...]:
        """Files and modules as comparable paths (a module `a.b` covers `a/b`)."""
        return (*self.files, *(module.replace(".", "/") for module in self.modules))

    @property
    def declared(self) -> bool:
        return bool(self.files or self.modules)


def normalise_path(path: str) -> str:
    path = path.strip().strip("`'\"").replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return path.rstrip("/")


def _declarations(text: str) -> tuple[list[str], list[str]]:
    files: list[str] = []
    modules: list[str] = []
    for match in _DECLARATION.finditer(text):
        items = [normalise_path(item) for item in _ITEM.findall(match["items"])]
        target = modules if match["kind"].lower().startswith("module") else files
        target.extend(item for item in items if item)
    return files, modules


def _clean_title(text: str) -> str:
    title = _TRAILING_DECLARATION.sub("", text)
    title = re.sub(r"\s+(?:files?|paths?|modules?)\s*:.*$", "", title, flags=re.IGNORECASE)
    return title.strip().rstrip(":").strip() or text.strip()


def parse_subtasks(markdown: str) -> list[SubTask]:
    lines = (markdown or "").replace("\r\n", "\n").split("\n")
    in_fence = False
    checkbox_items: list[tuple[str, bool, list[str]]] = []
    numbered_items: list[tuple[str, bool, list[str]]] = []
    current: list[str] | None = None
    for line in lines:
        if _FENCE.match(line):
            in_fence = not in_fence
            current = None
            continue
        if in_fence:
            continue
        checkbox = _CHECKBOX.match(line)
        numbered = _NUMBERED.match(line) if checkbox is None else None
        if checkbox is not None:
            current = []
            checkbox_items.append((checkbox["text"], checkbox["mark"] != " ", current))
        elif numbered is not None:
            current = []
            numbered_items.append((numbered["text"], False, current))
        elif current is not None and (line.startswith(("  ", "\t")) or not line.strip()):
            current.append(line.strip())
        else:
            current = None
    chosen = checkbox_items or numbered_items
    tasks = []
    for index, (text, done, body_lines) in enumerate(chosen, 1):
        description = "\n".join(body_lines).strip()
        files, modules = _declarations(text + "\n" + description)
        description_lines = [
            line for line in description.splitlines() if not _DECLARATION.match(line.strip())
        ]
        tasks.append(
            SubTask(
                index=index,
                title=_clean_title(text),
                description="\n".join(description_lines).strip(),
                files=tuple(dict.fromkeys(files)),
                modules=tuple(dict.fromkeys(modules)),
                done=done,
            )
        )
    return tasks
