#!/usr/bin/env python3
"""Checks every relative link and #anchor in the repository's Markdown files.

    python3 scripts/check-links.py              check every *.md git knows (tracked, or new and not ignored)
    python3 scripts/check-links.py FILE.md ...  check only these files
    python3 scripts/check-links.py --self-test  show that the checker catches what it should

A link's file (relative to the file holding the link, or to the repository root when it starts
with `/`) must exist; a `#anchor` into a Markdown file (or into the same file) must match one of
its headings under GitHub's rules (see `slug`) or an explicit `<a name=…>`/`id=…`. External links
(http:, https:, mailto:, any scheme) are not checked, nor is anything inside fenced code blocks
or inline code. shared/fuzz and target are skipped. Each broken link is printed as
`file:line: link — reason`; the exit status is 1 when there is one. Standard library only.
"""
import os
import re
import subprocess
import sys
import tempfile
import unicodedata
from urllib.parse import unquote

SKIP_PREFIXES = ("shared/fuzz/", "target/")

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
INLINE_CODE = re.compile(r"(`+)(.+?)\1")
# [text](target "title") and ![alt](target); the text may hold one level of brackets
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^\s()]*(?:\([^\s()]*\)[^\s()]*)*)(?:\s+(?:\"[^\"]*\"|'[^']*'|\([^)]*\)))?\s*\)")
REFERENCE_DEF = re.compile(r"^ {0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
HTML_ANCHOR = re.compile(r"<a\s[^>]*?(?:name|id)\s*=\s*[\"']([^\"']+)[\"']", re.IGNORECASE)
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def slug(heading):
    """GitHub's anchor for a heading's text: the rendered text (inline code without its
    backticks, links and images as their text, emphasis markers and HTML tags dropped),
    lowercased; every character that is not a letter, a mark, a digit, `-`, `_` or a space
    removed (non-ASCII letters stay); each space then becomes `-`."""
    text = INLINE_CODE.sub(lambda m: m.group(2).strip(), heading)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text)
    text = re.sub(r"(\*+|(?<!\w)_+|_+(?!\w))", "", text)
    out = []
    for ch in text.strip().lower():
        if ch in "-_ " or unicodedata.category(ch)[0] in "LMN":
            out.append(ch)
    return "".join(out).replace(" ", "-")


def unique_slugs(headings):
    """The anchors of headings in document order: a repeated slug gets -1, -2, … (GitHub)."""
    seen, out = {}, []
    for h in headings:
        base = slug(h)
        s = base
        if s in seen:
            n = seen[base]
            while True:
                n += 1
                s = f"{base}-{n}"
                if s not in seen:
                    break
            seen[base] = n
        seen.setdefault(s, 0)
        out.append(s)
    return out


def scan(text):
    """The headings of a Markdown text, its explicit HTML anchors, and its links as
    (line number, target), leaving out fenced code blocks and inline code."""
    headings, anchors, links = [], set(), []
    fence = None
    prev = ""  # the previous line, for setext headings ('' when it cannot be one)
    for number, line in enumerate(text.split("\n"), 1):
        m = FENCE.match(line)
        if fence:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not line[m.end():].strip():
                fence = None
            prev = ""
            continue
        if m:
            fence = m.group(1)
            prev = ""
            continue
        prose = INLINE_CODE.sub("", line)
        anchors.update(HTML_ANCHOR.findall(prose))
        for link in INLINE_LINK.finditer(prose):
            links.append((number, link.group(1).strip("<>")))
        r = REFERENCE_DEF.match(prose)
        if r:
            links.append((number, r.group(1).strip("<>")))
        a = ATX.match(line)
        if a:
            headings.append(a.group(2) or "")
            prev = ""
            continue
        if prev and SETEXT.match(line) and not line.lstrip().startswith("-" * 3 + " "):
            headings.append(prev.strip())
            prev = ""
            continue
        starts_block = re.match(r"^ {0,3}([-*+>|]|\d+[.)]\s|<)", line)
        prev = line if line.strip() and not starts_block and not line.startswith("    ") else ""
    return headings, anchors, links


class Repo:
    """Reads and scans each Markdown file once."""

    def __init__(self, root):
        self.root = os.path.abspath(root)
        self.cache = {}

    def anchors_of(self, path):
        if path not in self.cache:
            with open(path, encoding="utf-8") as f:
                headings, anchors, links = scan(f.read())
            self.cache[path] = (set(unique_slugs(headings)) | anchors, links)
        return self.cache[path]

    def check(self, rel):
        """The broken links of one file (its path relative to the root) and how many it has."""
        path = os.path.join(self.root, rel)
        _, links = self.anchors_of(path)
        broken = []
        for number, target in links:
            reason = self.reason(path, target)
            if reason:
                broken.append(f"{rel}:{number}: {target} — {reason}")
        return broken, len(links)

    def reason(self, path, target):
        if not target or SCHEME.match(target) or target.startswith("//"):
            return None  # external (or empty): not checked
        file_part, _, anchor = target.partition("#")
        file_part = unquote(file_part.split("?", 1)[0])
        if file_part:
            base = self.root if file_part.startswith("/") else os.path.dirname(path)
            dest = os.path.normpath(os.path.join(base, file_part.lstrip("/")))
            if not (dest == self.root or dest.startswith(self.root + os.sep)):
                return "points outside the repository"
            if not os.path.exists(dest):
                return "no such file"
        else:
            dest = path
        if not anchor:
            return None
        if os.path.isdir(dest) or not dest.endswith(".md"):
            return None  # anchors into other files (source lines, images) are not checked
        if unquote(anchor) not in self.anchors_of(dest)[0]:
            return f"no heading #{unquote(anchor)} in {os.path.relpath(dest, self.root)}"
        return None


def markdown_files(root):
    """Every *.md git tracks, or would track (new and not ignored), under root."""
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "--", "*.md"],
        cwd=root, check=True, capture_output=True, text=True,
    ).stdout.split("\n")
    files = sorted({f for f in out if f and not f.startswith(SKIP_PREFIXES)})
    return [f for f in files if os.path.isfile(os.path.join(root, f))]


def run(root, files):
    repo = Repo(root)
    broken, count = [], 0
    for rel in files:
        b, n = repo.check(rel)
        broken += b
        count += n
    return broken, count


def self_test():
    failures = []

    def expect(what, got, want):
        if got != want:
            failures.append(f"{what}: got {got!r}, want {want!r}")

    cases = {
        "Tenants and keys: `scim-admin`": "tenants-and-keys-scim-admin",
        "The setup portal for the customer's IT admin": "the-setup-portal-for-the-customers-it-admin",
        "Events: table stream → Pipe → enrichment → bus": "events-table-stream--pipe--enrichment--bus",
        "IAM: route → function → DynamoDB actions": "iam-route--function--dynamodb-actions",
        "What template_check.py proves": "what-template_checkpy-proves",
        "Two regions behind a custom domain (a walkthrough)": "two-regions-behind-a-custom-domain-a-walkthrough",
        "Upgrading: the table's layout version": "upgrading-the-tables-layout-version",
        "Straße für José": "straße-für-josé",
        "C++ & Rust, 100%!": "c--rust-100",
        "**Bold** and _emphasis_ and snake_case": "bold-and-emphasis-and-snake_case",
        "A [link](other.md) in a heading": "a-link-in-a-heading",
        "  Leading and trailing  ": "leading-and-trailing",
    }
    for heading, want in cases.items():
        expect(f"slug({heading!r})", slug(heading), want)
    expect("duplicates", unique_slugs(["Errors", "Errors", "Errors-1", "Errors"]),
           ["errors", "errors-1", "errors-1-1", "errors-2"])

    with tempfile.TemporaryDirectory() as root:
        os.makedirs(os.path.join(root, "docs"))
        files = {
            "a.md": "\n".join([
                "# A page",                                      # 1
                "",                                              # 2
                "[fine](docs/b.md) and [fine too](docs/b.md#second-part)",  # 3
                "[missing file](docs/missing.md)",               # 4
                "[missing anchor](docs/b.md#no-such-part)",      # 5
                "[here](#a-page) [not here](#nowhere)",          # 6
                "[external](https://example.com/x.md#y) `[code](nowhere.md)`",  # 7
                "```sh",                                         # 8
                "[in a fence](nowhere.md)",                      # 9
                "```",                                           # 10
                "[dup](docs/b.md#part-1) ![img](docs/pic.png)",  # 11
                "[ref]: docs/gone.md",                           # 12
                "Setext heading",                                # 13
                "--------------",                                # 14
                "[setext](#setext-heading) [html](docs/b.md#kept)",  # 15
            ]),
            "docs/b.md": "# B\n\n## Second part\n\n## Part\n\n## Part\n\n<a name=\"kept\"></a>\n",
            "docs/pic.png": "",
        }
        for name, text in files.items():
            with open(os.path.join(root, name), "w", encoding="utf-8") as f:
                f.write(text)
        broken, count = run(root, ["a.md", "docs/b.md"])
        expect("broken links", broken, [
            "a.md:4: docs/missing.md — no such file",
            "a.md:5: docs/b.md#no-such-part — no heading #no-such-part in docs/b.md",
            "a.md:6: #nowhere — no heading #nowhere in a.md",
            "a.md:12: docs/gone.md — no such file",
        ])
        expect("links counted", count, 12)

    if failures:
        for f in failures:
            print(f"links self-test FAILED: {f}")
        return 1
    print(f"links self-test: {len(cases) + 1} slug cases ok; a broken file link, a broken anchor "
          "and a broken same-file anchor caught; fenced, inline-code and external links ignored")
    return 0


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    root = subprocess.run(["git", "rev-parse", "--show-toplevel"], check=True,
                          capture_output=True, text=True).stdout.strip()
    files = [os.path.relpath(os.path.abspath(f), root) for f in argv[1:]] or markdown_files(root)
    broken, count = run(root, files)
    for line in broken:
        print(line)
    if broken:
        print(f"links: {len(broken)} broken of {count} links in {len(files)} files")
        return 1
    print(f"links: {count} links in {len(files)} files ok")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
