"""Reading the desk's HTML in tests the way a person reads the page: find an element by id, the label
around a field, the text a user sees. A small tree over the standard library's ``html.parser``."""

from __future__ import annotations

from html.parser import HTMLParser

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str | None], parent: Node | None = None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    def __repr__(self) -> str:
        return f"<{self.tag} {self.attrs}>"

    @property
    def text(self) -> str:
        """The visible text, with whitespace collapsed."""
        parts: list[str] = []

        def walk(node: Node) -> None:
            for child in node.children:
                if isinstance(child, str):
                    parts.append(child)
                elif child.tag not in ("script", "style"):
                    walk(child)
        walk(self)
        return " ".join(" ".join(parts).split())

    @property
    def elements(self) -> list[Node]:
        """The child elements (for a fragment's root: its top-level elements)."""
        return [child for child in self.children if isinstance(child, Node)]

    def iter(self):
        for child in self.children:
            if isinstance(child, Node):
                yield child
                yield from child.iter()

    def find_all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        """Descendants with this tag (any when None) whose attributes equal ``attrs`` (``class_`` matches one
        class of the element)."""
        found = []
        for node in self.iter():
            if tag is not None and node.tag != tag:
                continue
            if all(_matches(node, name, value) for name, value in attrs.items()):
                found.append(node)
        return found

    def find(self, tag: str | None = None, **attrs: str) -> Node | None:
        found = self.find_all(tag, **attrs)
        return found[0] if found else None

    def by_id(self, element_id: str) -> Node:
        node = self.find(id=element_id)
        assert node is not None, f"no element with id {element_id!r}"
        return node

    def field_label(self, name: str) -> Node:
        """The ``<label>`` that holds the form field ``name`` (where the desk shows its errors)."""
        for label in self.find_all("label"):
            if label.find(name=name) is not None:
                return label
        raise AssertionError(f"no label around a field named {name!r}")

    def field_errors(self, name: str) -> list[str]:
        return [e.text for e in self.field_label(name).find_all(class_="field-error")]


def _matches(node: Node, name: str, value: str) -> bool:
    if name == "class_":
        return value in (node.attrs.get("class") or "").split()
    return node.attrs.get(name.replace("_", "-")) == value


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.current = self.root

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs), self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag, attrs):
        self.current.children.append(Node(tag, dict(attrs), self.current))

    def handle_endtag(self, tag):
        node = self.current
        while node is not self.root and node.tag != tag:
            node = node.parent
        if node is not self.root:
            self.current = node.parent

    def handle_data(self, data):
        self.current.children.append(data)


def parse(html: str | bytes) -> Node:
    builder = _Builder()
    builder.feed(html.decode() if isinstance(html, bytes) else html)
    builder.close()
    return builder.root
