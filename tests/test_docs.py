"""The documents and docstrings name only files and functions that exist.

A stale name in a document sends a reader to code that moved or no longer exists, and nothing
else catches it: the documents are not imported. This test reads README.md, BUILD.md,
docs/DESIGN.md, tfrecords/README.md, bench/README.md and every docstring of the package, bench/
and tools/, and checks the names they give in backticks (and the file paths and
`stacked_hourglass.*` modules of fenced code blocks):

- file paths with a source extension (`data/pipeline.py`, `configs/demo.flags`, `bench/x.py`,
  `tests/test_convert.py`, `docs/DESIGN.md`; in running text too, where they name a folder of
  ours), with `{a,b}` alternatives expanded, relative to the repository root or to
  `stacked_hourglass/` (a docstring's path may also be relative to its own package);
- dotted names (`trainer.compile_model`, `model.StackedHourglass`, `stacked_hourglass.train`,
  `data/pipeline.make_train_dataset`) whose first component is one of the package's modules or
  classes, resolved by parsing the package's source with `ast` (no TensorFlow is imported);
- in the documents only, dotted names whose first component is neither ours nor a known outside
  library or example variable (`_FOREIGN`): a module that no longer exists
  (`transforms.warp_image`) is reported, not skipped;
- references to DESIGN.md or BUILD.md by heading (`DESIGN.md, *Layers and rules*`) name a heading
  it has, and none cites DESIGN by section number (`DESIGN.md §2`): numbers shift when sections
  move;
- the README's test command is the one CI runs (`.ci/run`).

Pure Python and fast: it needs neither TensorFlow nor the data.
"""

from __future__ import annotations

import ast
import dataclasses
import fnmatch
import functools
import itertools
import re
import textwrap
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "stacked_hourglass"
DOCUMENTS = ("README.md", "BUILD.md", "docs/DESIGN.md", "tfrecords/README.md", "bench/README.md")
# Folders whose docstrings are checked: the package and the scripts beside it.
SOURCES = (PACKAGE, "bench", "tools")

# Extensions of files that live in the repository (outputs such as `.json`, `.h5` or
# `.tfrecord` are named by documents too, but are written by a run, not kept in the tree).
_SOURCE_EXTENSIONS = ("py", "flags", "md", "toml", "cfg", "sh")
# First components of dotted names in the documents that are not ours and not checked: outside
# libraries, and the variables and file fields of the examples.
_FOREIGN_WORDS = """
    tf tensorflow keras np numpy os json h5py scipy torch absl flags pytest hypothesis
    matplotlib plt math collections typing tempfile shutil pathlib subprocess importlib
    tensorflow_serving ai_edge_litert tflite_runtime keras_hub predict_pb2 net fv r self options
    person source image tfrecords argparse jax sys
"""
_FOREIGN = frozenset(_FOREIGN_WORDS.split())
# Modules of ours whose names are also everyday variable names: in a docstring, `model.fit` or
# `config.data` is checked only when its second component is a name of that module.
_EVERYDAY = frozenset({"model", "config", "data"})
# A file path in running text, outside backticks: `configs/demo.flags`-like, with a folder.
_PROSE_PATH = re.compile(r"(?<![\w./:-])[\w.-]+(?:/[\w.{},-]+)+\.(?:py|flags|md)\b")
_COMMENT = re.compile(r"<!--.*?-->", re.S)
_BACKTICKS = re.compile(r"`([^`\n]+)`")
_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_INDENTED_CODE = re.compile(r"(?:^(?: {4}|\t).*\n?)+", re.M)
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
_PATH = re.compile(
    r"[\w.{},*/-]*/[\w.{},*/-]*|[\w{},*-]+\.(?:" + "|".join(_SOURCE_EXTENSIONS) + ")"
)
_TOKEN = re.compile(r"(?:\{[^{}\s]*\}|[^\s=`'\"(),;{}])+")
_DESIGN_SECTION = re.compile(r"DESIGN(?:\.md)?\)?,?\s*§\s*\d")
_HEADING_CITED = re.compile(r"(DESIGN|BUILD)(?:\.md)?\)?,\s*\*([^*]+)\*")
_PLACEHOLDER = re.compile(r"(?:^|[_/])(?:NAME|FILE|DIR|X|N|SPLIT|VARIANT)(?:$|[_./])")
# Extensions that mark a dotted token as a file name (`config.json`), not a module path.
_FILE_EXTENSION_WORDS = """
    json h5 mat py md tfrecord keras png jpg jpeg pt pth tar npz tflite csv flags txt toml zip
    gz lua pb cfg sh yaml yml io pkl
"""
_FILE_EXTENSIONS = frozenset(_FILE_EXTENSION_WORDS.split())


@dataclasses.dataclass(frozen=True)
class Problem:
    """One stale name: where it is written and what it names."""

    where: str
    name: str
    why: str

    def __str__(self) -> str:
        return f"{self.where}: `{self.name}` {self.why}"


# --- The package's names, from its source -------------------------------------------------------


@dataclasses.dataclass
class _Scope:
    """The names a module or class defines, as far as `ast` shows them."""

    names: dict[str, ast.AST | str | None]  # def/class nodes, "module:NAME" for imports, None
    open: bool = False  # a class with a base outside the package: any attribute may exist


class Package:
    """The modules of one package parsed with `ast`, to resolve dotted names without importing.

    Args:
        root: the repository root; the package is `root / name`.
        name: the package's import name.
    """

    def __init__(self, root: Path, name: str = PACKAGE):
        self.root = root
        self.name = name
        self.files: dict[str, Path] = {}
        for path in sorted((root / name).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            self.files[".".join(parts)] = path
        self.by_base: dict[str, list[str]] = {}
        for module in self.files:
            self.by_base.setdefault(module.rsplit(".", 1)[-1], []).append(module)

    @functools.cache  # noqa: B019 (one Package per test run)
    def tree(self, module: str) -> ast.Module:
        """The parsed source of `module` (dotted, e.g. `stacked_hourglass.data.codec`)."""
        return ast.parse(self.files[module].read_text(encoding="utf-8"))

    @functools.cache  # noqa: B019
    def classes(self) -> dict[str, list[str]]:
        """Top-level class name -> the modules that define it."""
        found: dict[str, list[str]] = {}
        for module in self.files:
            for node in self.tree(module).body:
                if isinstance(node, ast.ClassDef):
                    found.setdefault(node.name, []).append(module)
        return found

    def is_ours(self, first: str) -> bool:
        """Whether a dotted name starting with `first` names something of the package."""
        return first == self.name or first in self.by_base or first in self.classes()

    @functools.cache  # noqa: B019
    def module_scope(self, module: str) -> _Scope:
        names: dict[str, ast.AST | str | None] = {}
        for node in self.tree(module).body:
            _collect(node, names, module, self)
        return _Scope(names)

    def class_scope(self, module: str, node: ast.ClassDef) -> _Scope:
        names: dict[str, ast.AST | str | None] = {}
        for item in node.body:
            _collect(item, names, module, self)
        for item in ast.walk(node):
            if (
                isinstance(item, ast.Attribute)
                and isinstance(item.ctx, ast.Store)
                and isinstance(item.value, ast.Name)
                and item.value.id in ("self", "cls")
            ):
                names.setdefault(item.attr, None)
        is_open = False
        for base in node.bases:
            target = self._base(module, base)
            if target is None:
                is_open = is_open or not (isinstance(base, ast.Name) and base.id == "object")
            else:
                for name, value in self.class_scope(*target).names.items():
                    names.setdefault(name, value)
        return _Scope(names, is_open)

    def _base(self, module: str, base: ast.expr) -> tuple[str, ast.ClassDef] | None:
        if not isinstance(base, ast.Name):
            return None
        value = self.module_scope(module).names.get(base.id)
        if isinstance(value, ast.ClassDef):
            return module, value
        if isinstance(value, str):
            found = self._follow(value)
            if found and isinstance(found[1], ast.ClassDef):
                return found  # type: ignore[return-value]
        return None

    def _follow(self, target: str) -> tuple[str, ast.AST | None] | None:
        """`module:NAME` of an import -> (module, node) inside the package, or None."""
        module, _, name = target.partition(":")
        if module not in self.files:
            return None
        if not name:
            return module, None
        if f"{module}.{name}" in self.files:
            return f"{module}.{name}", None
        value = self.module_scope(module).names.get(name)
        if isinstance(value, str):
            return self._follow(value)
        return module, value

    def resolve(self, dotted: str) -> bool:
        """Whether `dotted` (e.g. `trainer.compile_model`, `model.StackedHourglass.get_config`,
        `stacked_hourglass.data.codec`) names a module, class, function or attribute of ours."""
        first, *rest = dotted.split(".")
        if first == self.name:
            starts = [(self.name, None)]
        else:
            starts = [(m, None) for m in self.by_base.get(first, [])]
            for module in self.classes().get(first, []):
                starts.append((module, self.module_scope(module).names[first]))
        return any(self._walk(module, node, rest) for module, node in starts)

    def _walk(self, module: str, node: ast.AST | None, rest: list[str]) -> bool:
        for name in rest:
            if node is None:  # a module
                if f"{module}.{name}" in self.files:
                    module = f"{module}.{name}"
                    continue
                scope = self.module_scope(module)
            elif isinstance(node, ast.ClassDef):
                scope = self.class_scope(module, node)
            else:  # a function or a value: what follows is an attribute of a result
                return False
            if name not in scope.names:
                return scope.open
            value = scope.names[name]
            if isinstance(value, str):
                found = self._follow(value)
                if found is None:  # imported from outside the package
                    return True
                module, value = found
            if value is None:
                return True  # a variable or attribute: what follows is not followed
            node = value
        return True


def _collect(node: ast.stmt, names: dict, module: str, package: Package) -> None:
    """Adds the names one top-level statement defines to `names`."""
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        names[node.name] = node
    elif isinstance(node, ast.Assign):
        for target in node.targets:
            for name in ast.walk(target):
                if isinstance(name, ast.Name):
                    names.setdefault(name.id, None)
    elif isinstance(node, ast.AnnAssign | ast.AugAssign) and isinstance(node.target, ast.Name):
        names.setdefault(node.target.id, None)
    elif isinstance(node, ast.Import):
        for alias in node.names:
            names[(alias.asname or alias.name).split(".")[0]] = f"{alias.name}:"
    elif isinstance(node, ast.ImportFrom):
        base = _absolute(node, module, package)
        for alias in node.names:
            names[alias.asname or alias.name] = f"{base}:{alias.name}"
    elif isinstance(node, ast.If | ast.Try | ast.With):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                _collect(child, names, module, package)


def _absolute(node: ast.ImportFrom, module: str, package: Package) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    is_package = package.files[module].name == "__init__.py"
    parts = parts[: len(parts) - node.level + (1 if is_package else 0)]
    return ".".join(parts + ([node.module] if node.module else []))


# --- Reading the texts ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Text:
    """A text to check: a document, or one docstring.

    Attributes:
        where: `file:line` of its first line, for the messages.
        body: the text.
        directory: the folder (relative to the root) its relative paths may also start from.
        strict: whether dotted names with an unknown first component are reported (documents) or
            skipped (docstrings, where `x.y` is often a variable's attribute).
        variables: names its module uses as arguments or variables: in a docstring `model.fit`
            is a method of an argument `model`, not a function of the package's `model`.
        code_blocks: whether indented lines are code (Markdown) or prose (docstrings).
    """

    where: str
    body: str
    directory: str = ""
    strict: bool = True
    variables: frozenset[str] = frozenset()
    code_blocks: bool = True


def document_text(name: str, root: Path = ROOT) -> Text:
    """A Markdown document, its HTML comments (notes to the editors) blanked out."""
    body = (root / name).read_text(encoding="utf-8")
    return Text(
        f"{name}:1", _blank(body, [(m.start(), m.group(0)) for m in _COMMENT.finditer(body)])
    )


def docstring_texts(root: Path = ROOT, folder: str = PACKAGE) -> list[Text]:
    """Every module, class and function docstring of the Python files under `folder`."""
    texts = []
    for path in sorted((root / folder).rglob("*.py")):
        relative = path.relative_to(root)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        variables = frozenset(
            node.arg if isinstance(node, ast.arg) else node.id
            for node in ast.walk(tree)
            if isinstance(node, ast.arg)
            or (isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store))
        )
        for node in ast.walk(tree):
            if not isinstance(
                node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
            ):
                continue
            if not (node.body and isinstance(node.body[0], ast.Expr)):
                continue
            value = node.body[0].value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                first, _, rest = value.value.partition("\n")
                texts.append(
                    Text(
                        f"{relative}:{node.body[0].lineno}",
                        f"{first}\n{textwrap.dedent(rest)}",
                        str(relative.parent),
                        strict=False,
                        variables=variables,
                        code_blocks=False,
                    )
                )
    return texts


def _line(text: Text, offset: int) -> str:
    name, _, first = text.where.rpartition(":")
    return f"{name}:{int(first) + text.body.count(chr(10), 0, offset)}"


def _spans(body: str, code_blocks: bool = True) -> list[tuple[int, str, bool]]:
    """(offset, text, is_code_block) of every backticked span and code block."""
    spans = []
    blocks = [(m.start(), m.group(0)) for m in _FENCE.finditer(body)]
    if code_blocks:
        blocks += [(m.start(), m.group(0)) for m in _INDENTED_CODE.finditer(_blank(body, blocks))]
    for start, block in blocks:
        spans.append((start, block, True))
    outside = _blank(body, blocks)
    spans += [(m.start(1), m.group(1), False) for m in _BACKTICKS.finditer(outside)]
    return spans


def _blank(body: str, blocks: list[tuple[int, str]]) -> str:
    for start, block in blocks:
        body = body[:start] + re.sub(r"[^\n]", " ", block) + body[start + len(block) :]
    return body


def _expand(token: str) -> list[str]:
    """`a/{b,c}.py` -> [`a/b.py`, `a/c.py`]."""
    match = re.search(r"\{([^{}]*)\}", token)
    if not match:
        return [token]
    head, tail = token[: match.start()], token[match.end() :]
    return list(
        itertools.chain.from_iterable(
            _expand(head + choice + tail) for choice in match.group(1).split(",")
        )
    )


# --- Checking ------------------------------------------------------------------------------------


def _bases(root: Path, directory: str) -> list[Path]:
    """The folders a relative path may start from."""
    bases = [root, root / PACKAGE]
    if directory:
        here = Path(directory)
        bases += [root / here] + [root / parent for parent in here.parents if parent != Path(".")]
    return bases


@functools.cache
def _file_names(root: Path) -> frozenset[str]:
    """Base names of the repository's files (a bare `compare.py` may be any of them)."""
    return frozenset(
        path.name
        for path in root.rglob("*")
        if not any(part.startswith(".") or part == "__pycache__" for part in path.parts)
    )


def _is_ours(path: str, root: Path, directory: str) -> bool:
    """Whether `path` starts in one of our folders (`src/misc/x.py` is another project's)."""
    first = path.split("/")[0]
    return "/" not in path or any((base / first).is_dir() for base in _bases(root, directory))


def _path_exists(path: str, root: Path, directory: str) -> bool:
    if "/" not in path:
        return any(fnmatch.fnmatchcase(name, path) for name in _file_names(root))
    for base in _bases(root, directory):
        candidate = base / path
        if "*" in path:
            if list(base.glob(path)):
                return True
        elif candidate.exists():
            return True
    return False


def _check_path(token: str, text: Text, root: Path, package: Package) -> list[str]:
    """Why `token` (a path, maybe `dir/module.Name`) is stale; [] when it is not a path of ours."""
    token = token.strip(".,;:()[]'\"<>").removeprefix("./")
    if token.startswith(("http", "//", "/", "~", "..", "-")) or "://" in token:
        return []
    problems = []
    for path in _expand(token):
        if _PLACEHOLDER.search(path) or not _is_ours(path, root, text.directory):
            continue
        head, _, last = path.rpartition("/")
        stem, dot, rest = last.partition(".")
        if not dot:
            continue
        extension = rest.rsplit(".", 1)[-1]
        if rest in _SOURCE_EXTENSIONS:
            if not _path_exists(path, root, text.directory):
                problems.append(f"{path}: no such file")
        elif extension not in _FILE_EXTENSIONS and head and _DOTTED.fullmatch(f"{stem}.{rest}"):
            # `data/pipeline.make_train_dataset`: a module path and a name in it.
            module_path = f"{head}/{stem}.py"
            if not _path_exists(module_path, root, text.directory):
                if _path_exists(f"{head}/{stem}/__init__.py", root, text.directory):
                    module_path = f"{head}/{stem}/__init__.py"
                else:
                    problems.append(f"{module_path}: no such file")
                    continue
            if not package.resolve(f"{stem}.{rest}"):
                problems.append(f"{stem}.{rest}: not defined in {module_path}")
    return problems


def _dotted_tokens(span: str) -> list[str]:
    tokens = []
    for match in _DOTTED.finditer(span):
        before = span[max(0, match.start() - 1) : match.start()]
        after = span[match.end() : match.end() + 1]
        if before in "/\\-=@$:" and before or after in "/-@" and after:
            continue  # part of a path, URL, flag value or e-mail, not a dotted name
        if match.group(0).rsplit(".", 1)[-1].lower() in _FILE_EXTENSIONS:
            continue
        tokens.append(match.group(0))
    return tokens


def check_text(text: Text, root: Path = ROOT, package: Package | None = None) -> list[Problem]:
    """The stale names of one text."""
    package = package or Package(root)
    problems = []
    for offset, span, is_code in _spans(text.body, text.code_blocks):
        where = _line(text, offset)
        for token in _TOKEN.findall(span):
            if "/" in token or _PATH.fullmatch(token.strip(".,;:")):
                for why in _check_path(token, text, root, package):
                    problems.append(Problem(where, token, why))
        for dotted in _dotted_tokens(span):
            first = dotted.split(".")[0]
            if is_code and first != PACKAGE or first in text.variables:
                continue  # code examples hold variables and outside libraries
            if any(_PLACEHOLDER.fullmatch(part) for part in dotted.split(".")):
                continue
            if package.is_ours(first):
                second = ".".join(dotted.split(".")[:2])
                if not text.strict and first in _EVERYDAY and not package.resolve(second):
                    continue  # `model.fit`, `config.data.max_pixels`: a variable's attribute
                if not package.resolve(dotted):
                    problems.append(Problem(where, dotted, "names nothing in the package"))
            elif text.strict and not is_code and first not in _FOREIGN and first.islower():
                problems.append(Problem(where, dotted, f"starts with `{first}`, not a module"))
    for match in _DESIGN_SECTION.finditer(text.body):
        problems.append(
            Problem(_line(text, match.start()), match.group(0), "cites DESIGN by number")
        )
    prose = _blank(text.body, [(offset, span) for offset, span, _ in _spans(text.body)])
    for match in _PROSE_PATH.finditer(prose):
        for why in _check_path(match.group(0), text, root, package):
            problems.append(Problem(_line(text, match.start()), match.group(0), why))
    for match in _HEADING_CITED.finditer(text.body):
        document = "docs/DESIGN.md" if match.group(1) == "DESIGN" else "BUILD.md"
        if match.group(2).strip() not in _headings(root / document):
            where = _line(text, match.start())
            problems.append(Problem(where, match.group(2), f"is no heading of {document}"))
    return problems


def _headings(path: Path) -> set[str]:
    if not path.exists():
        return set()
    lines = path.read_text(encoding="utf-8").splitlines()
    return {line.lstrip("#").strip() for line in lines if line.startswith("#")}


def _anchors(text: Text) -> list[Problem]:
    """Markdown links to `#anchors` of the same document that no heading makes."""
    slugs = {
        re.sub(r"[^\w\- ]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in text.body.splitlines()
        if line.startswith("#")
    }
    return [
        Problem(_line(text, m.start()), m.group(1), "links to no heading of this document")
        for m in re.finditer(r"\]\(#([^)]+)\)", text.body)
        if m.group(1) not in slugs
    ]


# --- Tests ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def package():
    return Package(ROOT)


@pytest.mark.parametrize("name", DOCUMENTS)
def test_documents_name_only_what_exists(name, package):
    text = document_text(name)
    problems = check_text(text, ROOT, package) + _anchors(text)
    assert not problems, "\n".join(map(str, problems))


def test_readme_test_command_is_the_one_ci_runs():
    lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    marker = next(i for i, line in enumerate(lines) if "keep in step with README.md" in line)
    command = lines[marker + 1].strip()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert command in readme.split("## Install")[0], f"README.md lacks .ci/run's {command!r}"


@pytest.mark.parametrize("folder", SOURCES)
def test_docstrings_name_only_what_exists(folder, package):
    texts = docstring_texts(ROOT, folder)
    problems = [p for text in texts for p in check_text(text, ROOT, package)]
    assert not problems, "\n".join(map(str, problems))


def comment_problems(root: Path = ROOT, folder: str = PACKAGE) -> list[Problem]:
    """DESIGN.md cited by section number in comments under `folder` (docstrings: `check_text`)."""
    problems = []
    for path in sorted((root / folder).rglob("*.py")):
        with path.open(encoding="utf-8") as source:
            for token in tokenize.generate_tokens(source.readline):
                if token.type == tokenize.COMMENT and _DESIGN_SECTION.search(token.string):
                    where = f"{path.relative_to(root)}:{token.start[0]}"
                    problems.append(Problem(where, token.string, "cites DESIGN by number"))
    return problems


@pytest.mark.parametrize("folder", SOURCES)
def test_comments_cite_design_by_heading(folder):
    problems = comment_problems(ROOT, folder)
    assert not problems, "\n".join(map(str, problems))


def _fake(tmp_path: Path) -> Path:
    """A repository of two modules and a DESIGN page, for the checker's own tests."""
    (tmp_path / PACKAGE / "data").mkdir(parents=True)
    (tmp_path / PACKAGE / "__init__.py").write_text("")
    (tmp_path / PACKAGE / "data" / "__init__.py").write_text("from .codec import Codec\n")
    (tmp_path / PACKAGE / "data" / "codec.py").write_text(
        "import numpy as np\n\n"
        "class Base:\n    def encode(self):\n        self.size = 1\n\n"
        "class Codec(Base):\n    sigma: float = 1.0\n    def decode(self):\n        pass\n\n"
        "def make(x):\n    '''See `codec.Codec.decode` and `codec.gone`.'''\n"
    )
    (tmp_path / "configs").mkdir()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "DESIGN.md").write_text("# Design\n\n## Layers and rules\n")
    return tmp_path


def test_checker_finds_stale_paths_and_names(tmp_path):
    root = _fake(tmp_path)
    text = Text(
        "FAKE.md:1",
        "Fine: `data/codec.py`, `stacked_hourglass/data/codec.py`, `codec.Codec.decode`,\n"
        "`codec.Codec.encode`, `codec.Codec.size`, `codec.Codec.sigma`, `data.Codec`,\n"
        "`codec.np.zeros`, `data/codec.make`, `stacked_hourglass.data.codec`, `data/{codec}.py`,\n"
        "`config.json`, `tf.io.gfile`, `runs/x/model.keras`, `tests/test_NAME.py`,\n"
        "DESIGN.md, *Layers and rules*.\n"
        "Stale: `data/features.py`, `codec.Codec.warp`, `codec.gone`, `data/codec.gone`,\n"
        "`transforms.warp_image`, `data/{codec,geometry}.py`, DESIGN.md §2, DESIGN.md, *Tests*.\n"
        "In prose: data/codec.py is fine, data/gone.py is not, nor other/x.py of another project.\n"
        "```\npython -m stacked_hourglass.data.gone --flagfile=configs/none.flags\n"
        "net.fit(x)\n```\n",
    )
    problems = check_text(text, root)
    assert {p.name for p in problems} == {
        "data/features.py",
        "codec.Codec.warp",
        "codec.gone",
        "data/codec.gone",
        "transforms.warp_image",
        "data/{codec,geometry}.py",
        "DESIGN.md §2",
        "Tests",
        "stacked_hourglass.data.gone",
        "configs/none.flags",
        "data/gone.py",
    }, "\n".join(map(str, problems))
    assert [p.where for p in problems if p.name == "data/features.py"] == ["FAKE.md:6"]


def test_checker_reads_docstrings_leniently_with_their_line(tmp_path):
    root = _fake(tmp_path)
    package = Package(root)
    texts = docstring_texts(root)
    problems = [p for text in texts for p in check_text(text, root, package)]
    assert [(p.where, p.name) for p in problems] == [
        (f"{PACKAGE}/data/codec.py:13", "codec.gone")
    ], problems


def test_checker_finds_broken_anchors():
    text = Text("FAKE.md:1", "# Data\n\nSee [Data](#data) and [Gone](#gone).\n")
    assert [p.name for p in _anchors(text)] == ["gone"]
