"""A PDF page as text in reading order, rebuilt from where pdfium places each character.

Content-stream order (what pypdf's ``extract_text`` returns) knows nothing of the page: a table's
cells come out as a run of numbers, a cell's second line lands after the next cells, line numbers
down a transcript's margin end up inside its sentences. Here each character's box comes from pdfium
(pypdfium2), and the page is rebuilt:

1. **Words** from characters: pdfium's spaces, or a gap. pdfium marks a hyphen at a line end with
   U+FFFE and joins the word; the mark is kept (as U+00AD) for :func:`rag.text.rejoin_hyphens`, which
   decides from the whole document whether the hyphen was part of the word.
2. **Blocks in reading order** by recursive XY-cut: a blank gutter that runs the whole height of a
   region splits it into columns, read left to right; otherwise blank bands split it into blocks,
   read top to bottom.
3. **Tables.** A region whose gutters separate short cells set in rows is a table, not columns. It
   becomes Markdown rows, ``| cell | cell |``, under a header row (the rows above the first row that
   holds a number) and a ``| --- |`` line; a line with text in one column only continues the row above.
4. **Margins.** Line numbers down the left margin (court transcripts) are dropped; text set at an
   angle (a stamp or a typesetter's slug in the margin) comes last on the page. Running heads and
   footers, found across the document by :func:`running_lines`, are dropped before a page is laid out,
   so they never end up inside a table or a paragraph.

Example:
    >>> import pypdfium2 as pdfium
    >>> document = pdfium.PdfDocument("docs/lumen-l2-guide.pdf")
    >>> page_text(document[0]).splitlines()[0]
    'Lumen L2 Solar Lantern: User Guide'

"""
from __future__ import annotations

import ctypes
import math
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rag.text import CJK, PAGE_NUMBER_LINE, SOFT_HYPHEN

_HYPHEN_MARKS = (0x02, 0xFFFE, 0xAD)
"""What pdfium gives for a hyphen at a line end (0x02; U+FFFE in its text ranges) and a soft hyphen."""
_LEADER_CHARS = ".⋅·…_"
_LEADERS = re.compile(f"[{_LEADER_CHARS}]{{3,}}")
_PAGE_NUMBER = re.compile(r"\d{1,4}|[ivxlcdmIVXLCDM]{1,8}")
_DIGIT = re.compile(r"\d")
_DIGIT_RUN = re.compile(r"\d+")
_LINE_NUMBER = re.compile(r"\d{1,3}")
TABLE_CELL_CHARS = 24
"""A region whose cells have a median length above this (characters) is read as columns of prose."""


@dataclass
class Word:
    """A word and its box, in points from the page's top-left corner."""

    text: str
    x0: float
    x1: float
    top: float
    bottom: float
    leaders: bool = False
    """Dot leaders followed the word (a table-of-contents entry or a table cell); they are not kept."""

    @property
    def height(self) -> float:
        return self.bottom - self.top

    @property
    def middle(self) -> float:
        return (self.top + self.bottom) / 2


_DIRECTIONS = ((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))


def page_words(page: Any) -> tuple[list[Word], list[str]]:
    """The page's words in the direction most of its text runs (so a landscape page set sideways reads as
    it is seen), and its lines of text set at any other angle, in content order."""
    import pypdfium2.raw as pdfium_c

    textpage = page.get_textpage()
    raw = textpage.raw
    box = pdfium_c.FS_RECTF()
    left, right, bottom, top = (ctypes.c_double() for _ in range(4))
    chars: list[tuple[str, float, float, float, float, float]] = []  # char, left, bottom, right, top, angle
    for i in range(textpage.count_chars()):
        code = pdfium_c.FPDFText_GetUnicode(raw, i)
        if code in _HYPHEN_MARKS:
            chars.append((SOFT_HYPHEN, 0, 0, 0, 0, -1.0))
            continue
        char = chr(code) if code < 0x110000 else "\ufffd"
        if char.isspace() or code < 0x20:
            chars.append((" ", 0, 0, 0, 0, -1.0))
            continue
        if 0xDC00 <= code <= 0xDFFF:  # the second half of a UTF-16 surrogate pair
            if chars and 0xD800 <= ord(chars[-1][0]) <= 0xDBFF:
                high = ord(chars[-1][0])
                chars[-1] = (chr(0x10000 + ((high - 0xD800) << 10) + code - 0xDC00), *chars[-1][1:])
            continue
        pdfium_c.FPDFText_GetLooseCharBox(raw, i, box)
        # the glyph's own left and right (the loose box runs into the gutter), the font's height
        pdfium_c.FPDFText_GetCharBox(raw, i, left, right, bottom, top)
        if right.value > left.value and _quarter(pdfium_c.FPDFText_GetCharAngle(raw, i)) % 2 == 0:
            box.left, box.right = left.value, right.value
        elif top.value > bottom.value:
            box.bottom, box.top = bottom.value, top.value
        chars.append((char, box.left, box.bottom, box.right, box.top, pdfium_c.FPDFText_GetCharAngle(raw, i)))
    chars = [c if not 0xD800 <= ord(c[0]) <= 0xDFFF else ("\ufffd", *c[1:]) for c in chars]  # unpaired halves
    upright = _dominant_angle(chars)
    direction = _reading_direction(chars, upright)
    return _words(chars, upright, direction)


def _quarter(angle: float) -> int:
    """The angle as the nearest quarter turn, 0-3."""
    return round(angle / (math.pi / 2)) % 4


def _dominant_angle(chars: list[tuple[str, float, float, float, float, float]]) -> float:
    angles = [c[5] for c in chars if c[5] >= 0]
    if not angles:
        return 0.0
    quarters = [_quarter(a) for a in angles]
    return max(range(4), key=quarters.count) * math.pi / 2


def _upright(angle: float, upright: float) -> bool:
    return abs(math.remainder(angle - upright, 2 * math.pi)) < 0.05


def _reading_direction(chars: list[tuple[str, float, float, float, float, float]], upright: float) -> tuple[float, float]:
    """The unit vector from one character to the next along a line of the upright text."""
    votes = [0.0] * 4
    for a, b in zip(chars, chars[1:], strict=False):
        if a[5] < 0 or b[5] < 0 or not (_upright(a[5], upright) and _upright(b[5], upright)):
            continue
        dx, dy = (b[1] + b[3] - a[1] - a[3]) / 2, (b[2] + b[4] - a[2] - a[4]) / 2
        for k, (ux, uy) in enumerate(_DIRECTIONS):
            votes[k] += max(0.0, dx * ux + dy * uy)
    return _DIRECTIONS[max(range(4), key=votes.__getitem__)]


def _words(chars: list[tuple[str, float, float, float, float, float]], upright: float,
           direction: tuple[float, float]) -> tuple[list[Word], list[str]]:
    ux, uy = direction
    vx, vy = uy, -ux  # from one line to the next
    words: list[Word] = []
    angled: list[str] = []
    angled_chars: list[str] = []
    letters: list[str] = []
    x0 = x1 = top = bottom = 0.0
    joined = False  # the word goes on past a hyphen at a line end, on the next line

    def flush() -> None:
        nonlocal letters
        if letters:
            words.append(Word("".join(letters), x0, x1, top, bottom))
            letters = []

    for char, left, low, right, high, angle in chars:
        if char == SOFT_HYPHEN:
            if letters:
                letters.append(SOFT_HYPHEN)
                joined = True
            continue
        if char == " ":
            if joined and letters and letters[-1] == SOFT_HYPHEN:
                continue
            joined = False
            flush()
            if angled_chars and angled_chars[-1] != " ":
                angled_chars.append(" ")
            continue
        if not _upright(angle, upright):  # a stamp or a slug set at an angle: its own line
            flush()
            angled_chars.append(char)
            continue
        if angled_chars:
            angled.append("".join(angled_chars).strip())
            angled_chars = []
        along = (left * ux + low * uy, right * ux + high * uy)
        across = (left * vx + low * vy, right * vx + high * vy)
        c_x0, c_x1 = min(along), max(along)
        c_top, c_bottom = min(across), max(across)
        if joined and letters and letters[-1] == SOFT_HYPHEN and c_top - bottom > 2 * (bottom - top):
            letters.pop()  # what follows the hyphen is not the next line (the page's last word went on overleaf)
            joined = False
        if joined:  # the rest of a hyphenated word stays with the word's first part
            letters.append(char)
            continue
        if letters:
            size = max(bottom - top, c_bottom - c_top, 1.0)
            same_line = min(bottom, c_bottom) - max(top, c_top) > 0.4 * min(bottom - top, c_bottom - c_top)
            if not same_line or c_x0 - x1 > 0.3 * size or c_x0 < x0 - 0.5 * size:
                flush()
        if not letters:
            x0, x1, top, bottom = c_x0, c_x1, c_top, c_bottom
        else:
            x1, top, bottom = max(x1, c_x1), min(top, c_top), max(bottom, c_bottom)
        letters.append(char)
    flush()
    if angled_chars:
        angled.append("".join(angled_chars).strip())
    return _without_leaders([w for w in words if w.x1 > w.x0 and w.bottom > w.top]), [line for line in angled if line]


def _without_leaders(words: list[Word]) -> list[Word]:
    """Dot leaders removed (runs of three or more leader characters, in one word or spread over several),
    the word before each run marked with ``leaders``."""
    kept: list[Word] = []
    run = 0
    for word in words:
        bare = word.text.strip(_LEADER_CHARS)
        if not bare:
            run += len(word.text)
            if run >= 3 and kept:
                kept[-1].leaders = True
                kept[-1].text = kept[-1].text.rstrip(_LEADER_CHARS) or kept[-1].text
            continue
        run = 0
        match = _LEADERS.search(word.text)
        if match is None:
            kept.append(word)
            continue
        width = (word.x1 - word.x0) / len(word.text)
        head, tail = word.text[: match.start()], word.text[match.end():]
        if head:
            kept.append(Word(head, word.x0, word.x0 + width * len(head), word.top, word.bottom, leaders=True))
        elif kept:
            kept[-1].leaders = True
        if tail:
            kept.append(Word(tail, word.x1 - width * len(tail), word.x1, word.top, word.bottom))
    return kept


def rows_of(words: Sequence[Word]) -> list[list[Word]]:
    """Words grouped into visual lines (by vertical overlap), top to bottom, each left to right."""
    rows: list[list[Word]] = []
    for word in sorted(words, key=lambda w: (w.middle, w.x0)):
        if rows:
            seed = rows[-1][0]  # the row's first word, not the union of its words: rows must not chain
            if min(seed.bottom, word.bottom) - max(seed.top, word.top) > 0.5 * min(seed.height, word.height):
                rows[-1].append(word)
                continue
        rows.append([word])
    return [sorted(row, key=lambda w: w.x0) for row in rows]


def drop_line_numbers(words: list[Word]) -> list[Word]:
    """Without a column of line numbers down the left margin (1, 2, 3 ... on ten lines or more)."""
    rows = rows_of(words)
    firsts = [row[0] for row in rows if len(row) > 1 or _LINE_NUMBER.fullmatch(row[0].text)]
    numbered = [w for w in firsts if _LINE_NUMBER.fullmatch(w.text)]
    if len(numbered) < 10:
        return words
    right = statistics.median(w.x1 for w in numbered)
    column = [w for w in numbered if abs(w.x1 - right) < 3]
    values = [int(w.text) for w in column]
    if len(column) < 10 or sum(b == a + 1 for a, b in zip(values, values[1:], strict=False)) < 0.8 * (len(values) - 1):
        return words
    others = [w for w in words if w not in column]
    if not others or min(w.x0 for w in others) < right:
        return words
    dropped = {id(w) for w in column}
    return [w for w in words if id(w) not in dropped]


def _gaps(intervals: list[tuple[float, float]], min_gap: float, crossing: int = 0) -> list[tuple[float, float]]:
    """The stretches at least ``min_gap`` long between ``intervals`` (on one axis) that at most ``crossing``
    of them run across (a page number in the gutter between two columns)."""
    events = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    gaps = []
    depth, opened, seen = 0, None, 0
    for position, step in events:
        before = depth
        depth += step
        seen += step > 0
        if before > crossing >= depth and seen < len(intervals) + 1:
            opened = position
        elif before <= crossing < depth and opened is not None:
            if position - opened >= min_gap:
                gaps.append((opened, position))
            opened = None
    return gaps


@dataclass
class _Region:
    words: list[Word]
    table: list[float] | None = None
    """For a table: the x positions of its column gutters (found in its body)."""
    header: list[Word] | None = None
    """For a table: the words of its header rows, which may span columns."""


def _crosses(word: Word, cut: float, height: float) -> bool:
    """Whether the word runs across the cut (by more than a quarter line height on each side: a word that
    ends just past the middle of a gutter does not)."""
    return word.x0 < cut - 0.25 * height and word.x1 > cut + 0.25 * height


def _typical_height(words: Sequence[Word]) -> float:
    return statistics.median(w.height for w in words) if words else 10.0


COLUMN_GUTTER = 0.6
"""A blank strip at least this many line heights wide, down a region's whole height, splits it into columns."""
CELL_GUTTER = 0.45
"""Between a table's cells a narrower strip will do, since the cells must also pass :func:`_is_table`."""
BLOCK_GAP = 0.6
"""A blank band at least this many line heights tall splits a region into blocks."""


def _xy_cut(words: list[Word], height: float, depth: int = 0) -> list[_Region]:
    """Regions in reading order: columns left to right when a gutter runs the region's whole height, else
    blocks top to bottom (see :func:`_blocks`). A region that reads as a table is one region, unless its
    blocks hold a table of more columns (a big table under a title, above its notes)."""
    if len(words) < 2 or depth > 30:
        return [_Region(words)]
    rows = len(rows_of(words))
    gutters = _gaps([(w.x0, w.x1) for w in words], COLUMN_GUTTER * height) or _prose_gutters(words, height, rows // 10)
    if not gutters or rows < 3:  # columns of one or two lines are gaps in a line
        return _blocks(words, height, depth)
    cuts = _table_cuts(words, height)
    if cuts is not None:
        blocks = _blocks(words, height, depth)
        if max((len(r.table) for r in blocks if r.table), default=0) > len(cuts):
            return blocks
        return [_table_region(words, height, cuts)]
    mids = [(a + b) / 2 for a, b in gutters]
    columns: list[list[Word]] = [[] for _ in range(len(mids) + 1)]
    for word in words:
        columns[sum(word.x0 > cut for cut in mids)].append(word)
    return [region for column in columns for region in _xy_cut(column, height, depth + 1)]


def _prose_gutters(words: list[Word], height: float, crossing: int) -> list[tuple[float, float]]:
    """Gutters that a few words run across (a page number between two columns), kept only when each column
    they make holds justified prose."""
    if not crossing:
        return []
    gutters = _gaps([(w.x0, w.x1) for w in words], COLUMN_GUTTER * height, crossing)
    mids = [(a + b) / 2 for a, b in gutters]
    columns: list[list[Word]] = [[] for _ in range(len(mids) + 1)]
    for word in words:
        columns[sum(word.x0 > cut for cut in mids)].append(word)
    prose = all(_is_prose_column([row for row in rows_of(column)]) for column in columns)
    return gutters if gutters and prose else []


def _blocks(words: list[Word], height: float, depth: int) -> list[_Region]:
    """The region split at blank bands into blocks, top to bottom. A block that is a table takes in the
    blocks below it while they keep its columns (rows spaced apart), and the rows just above it that
    fit its columns (its header); the other blocks are cut further."""
    rows = rows_of(words)
    pitch = [b[0].top - a[0].bottom for a, b in zip(rows, rows[1:], strict=False)]
    spacing = statistics.median(pitch) if pitch else 0.0  # double-spaced text is not a block a line
    bands = _gaps([(w.top, w.bottom) for w in words], max(BLOCK_GAP * height, 1.6 * spacing))
    if not bands:
        cuts = _table_cuts(words, height)
        return [_Region(words) if cuts is None else _table_region(words, height, cuts)]
    mids = [(a + b) / 2 for a, b in bands]
    blocks: list[list[Word]] = [[] for _ in range(len(mids) + 1)]
    for word in words:
        blocks[sum(word.middle > cut for cut in mids)].append(word)
    regions: list[_Region] = []
    text: list[list[Word]] = []
    i = 0
    while i < len(blocks):
        cuts = _table_cuts(blocks[i], height)
        if cuts is None:
            text.append(blocks[i])
            i += 1
            continue
        table = blocks[i]
        while i + 1 < len(blocks):
            below = _table_cuts(blocks[i + 1], height) or []
            more = _table_cuts(table + blocks[i + 1], height)
            if more is None or len(more) < max(len(cuts), len(below)):
                break
            table, cuts, i = table + blocks[i + 1], more, i + 1
        header = _header_rows(text[-1], cuts, height) if text else []
        if header:
            text[-1] = [w for w in text[-1] if not any(w is h for h in header)]
        regions += [r for block in text if block for r in _xy_cut(block, height, depth + 1)]
        text = []
        regions.append(_table_region(header + table, height, cuts))
        i += 1
    return regions + [r for block in text if block for r in _xy_cut(block, height, depth + 1)]


def _header_rows(block: list[Word], cuts: list[float], height: float, most: int = 4) -> list[Word]:
    """The words of the last rows of ``block`` that fit a table's columns (no word across a cut): its header.
    Leading rows with a single cell in the first column (a caption) stay out."""
    rows = rows_of(block)
    taken: list[list[Word]] = []
    while rows and len(taken) < most and not any(_crosses(w, cut, height) for w in rows[-1] for cut in cuts):
        taken.insert(0, rows.pop())
    while taken and all(w.x1 < cuts[0] for w in taken[0]):
        taken.pop(0)
    return [w for row in taken for w in row]


def _table_cuts(words: list[Word], height: float) -> list[float] | None:
    """The column cuts of ``words`` when they form a table, else None; found in the table's body (see
    :func:`_split_header`), since header cells may span columns."""
    body = _split_header(rows_of(words))[1]
    gutters = _gaps([(w.x0, w.x1) for row in body for w in row], CELL_GUTTER * height)
    cuts = [(a + b) / 2 for a, b in gutters]
    return cuts if cuts and _is_table([w for row in body for w in row], cuts) else None


def _split_header(rows: list[list[Word]]) -> tuple[list[list[Word]], list[list[Word]]]:
    """``(header rows, body rows)``: the header is the rows above the first row that holds a digit (the first
    row when none does; none when that is more than five rows down)."""
    first_body = next((i for i, row in enumerate(rows) if any(_DIGIT.search(w.text) for w in row)), 1)
    if first_body > 5 or first_body >= len(rows):
        first_body = 0
    return rows[:first_body], rows[first_body:]


def _cells(row: list[Word], cuts: list[float]) -> list[str]:
    cells: list[list[str]] = [[] for _ in range(len(cuts) + 1)]
    for word in row:
        cells[sum(word.x0 > cut for cut in cuts)].append(word.text)
    return [_LEADERS.sub(" ", " ".join(cell)).strip() for cell in cells]


_RUNNING_TEXT = re.compile(f"\\b[a-z]{{2,}}\\b.*\\b[a-z]{{2,}}\\b|[{CJK}]{{4}}")
_BULLET = re.compile(r"[•·▪◦●■□–—*-]|\(?(?:\d{1,2}|[a-zA-Z])[.)]")


def _is_table(words: list[Word], cuts: list[float]) -> bool:
    """Rows of several short cells (a table), not columns of prose lines, a bulleted list or prose cut at a gap."""
    rows = _merged_rows(words, cuts)
    multi = [row for row in rows if sum(bool(c) for c in row) >= 2]
    if len(multi) < max(2, 0.5 * len(rows)):
        return False
    lengths = [len(c) for row in multi for c in row if c]
    if statistics.median(lengths) > TABLE_CELL_CHARS:
        return False
    firsts = [row[0] for row in multi if row[0]]
    if firsts and sum(bool(_BULLET.fullmatch(c)) for c in firsts) > 0.6 * len(firsts):
        return False
    # prose cut at a gap: the cells after the first go on mid-sentence ("any additional supervision,")
    later = [c for row in multi for c in row[1:] if c]
    if sum(c[0].islower() and len(c.split()) >= 3 for c in later) >= 0.3 * len(later):
        return False
    return not any(_is_prose_column(column) for column in _columns(words, cuts))


def _columns(words: list[Word], cuts: list[float]) -> list[list[list[Word]]]:
    """Per column, the words of each row that fall in it (rows without any left out)."""
    columns: list[list[list[Word]]] = [[] for _ in range(len(cuts) + 1)]
    for row in rows_of(words):
        cells: list[list[Word]] = [[] for _ in range(len(cuts) + 1)]
        for word in row:
            cells[sum(word.x0 > cut for cut in cuts)].append(word)
        for column, cell in zip(columns, cells, strict=True):
            if cell:
                column.append(cell)
    return columns


def _is_prose_column(cells: list[list[Word]]) -> bool:
    """Justified lines of prose: four or more long, different lines of running text (lower-case words or
    Chinese) that nearly all fill the column's width."""
    if len(cells) < 4:
        return False
    lines = [" ".join(w.text for w in c) for c in cells]
    left, right = min(c[0].x0 for c in cells), max(c[-1].x1 for c in cells)
    fill = statistics.median((c[-1].x1 - c[0].x0) / max(right - left, 1e-6) for c in cells)
    running = sum(bool(_RUNNING_TEXT.search(line)) for line in lines) > 0.5 * len(lines)
    return (fill >= 0.85 and statistics.median(map(len, lines)) >= 25 and running
            and len(set(lines)) > 0.8 * len(lines))


def _merged_rows(words: list[Word], cuts: list[float]) -> list[list[str]]:
    """The cells of each row; a line with text in one column only, past the first column, continues the row
    above (a cell of two lines)."""
    rows: list[list[str]] = []
    for row in rows_of(words):
        cells = _cells(row, cuts)
        filled = [i for i, c in enumerate(cells) if c]
        if rows and len(filled) == 1 and filled[0] > 0:
            i = filled[0]
            rows[-1][i] = f"{rows[-1][i]} {cells[i]}".strip()
        elif filled:
            rows.append(cells)
    return rows


def _table_region(words: list[Word], height: float, cuts: list[float]) -> _Region:
    """A table with ``cuts`` between the columns of its body (see :func:`_split_header`)."""
    header, body = _split_header(rows_of(words))
    return _Region([w for row in body for w in row], cuts, [w for row in header for w in row])


def _header_names(header: list[Word], cuts: list[float]) -> list[str]:
    """Each column's name: the header phrases whose middle is over it, row by row."""
    names: list[list[str]] = [[] for _ in range(len(cuts) + 1)]
    for row in rows_of(header):
        phrases: list[list[Word]] = []
        for word in row:  # words a space apart name one column ("Long Gun")
            if phrases and word.x0 - phrases[-1][-1].x1 < 0.4 * word.height:
                phrases[-1].append(word)
            else:
                phrases.append([word])
        for phrase in phrases:
            middle = (phrase[0].x0 + phrase[-1].x1) / 2
            names[sum(middle > cut for cut in cuts)].append(" ".join(w.text for w in phrase))
    return [" ".join(n for n in name if n) for name in names]


def _markdown_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "/") for c in cells) + " |"


def render_table(region: _Region) -> str:
    """A table region as Markdown: one header row with each column's name and a ``| --- |`` line when it has a
    header, then one line per row."""
    cuts = region.table or []
    lines = []
    if region.header:
        names = _header_names(region.header, cuts)
        lines += [_markdown_row(names), _markdown_row(["---"] * len(names))]
    lines += [_markdown_row(row) for row in _merged_rows(region.words, cuts)]
    return "\n".join(lines)


def is_contents_entry(row: Sequence[Word]) -> bool:
    """A table-of-contents line: a title, dot leaders, a page number."""
    return len(row) > 1 and any(w.leaders for w in row[:-1]) and bool(_PAGE_NUMBER.fullmatch(row[-1].text))


def render_lines(words: list[Word]) -> str:
    """The words line by line, without table-of-contents entries."""
    return "\n".join(" ".join(w.text for w in row) for row in rows_of(words) if not is_contents_entry(row))


def _render(region: _Region) -> str:
    """A region's text; a table most of whose rows are table-of-contents entries is left out."""
    if region.table is None:
        return render_lines(region.words)
    rows = rows_of(region.words)
    entries = [is_contents_entry(row) for row in rows]
    # an entry of two lines: its first line has no page number, the line after it ends the entry
    covered = sum(entry or (i + 1 < len(rows) and entries[i + 1]) for i, entry in enumerate(entries))
    if covered > 0.6 * len(rows):
        return ""
    return render_table(region)


def page_text(page: Any, running: frozenset[str] = frozenset()) -> str:
    """The page's text in reading order: blocks separated by blank lines, tables as Markdown rows,
    text set at an angle last; its edge lines whose :func:`running_key` is in ``running`` left out."""
    words, angled = page_words(page)
    words = drop_line_numbers(words)
    if running:
        dropped = {id(w) for row in _edge_rows(words) if running_key(_row_text(row)) in running for w in row}
        words = [w for w in words if id(w) not in dropped]
        angled = [line for line in angled if running_key(line) not in running]
    if not words:
        return "\n".join(angled)
    height = _typical_height(words)
    parts = [_render(r) for r in _xy_cut(words, height) if r.words]
    return "\n\n".join(part for part in [*parts, *angled] if part)


EDGE_ROWS = 2
"""Lines at the top and at the bottom of a page that may be a running head or footer."""
RUNNING_SHARE = 0.25
"""An edge line that recurs (numbers aside) on this share of the pages, and on three at least, is a running
head or footer: a quarter, since odd and even pages often carry different ones."""


def running_key(line: str) -> str:
    """What a running head or footer keeps from page to page: its words without numbers or spacing; every
    lone page number ("12", "iv", "Page 3 of 9") has the same key.

    Example:
        >>> running_key("47703 Federal Register / Vol. 85") == running_key("Federal Register / Vol. 86 47704")
        True
    """
    if PAGE_NUMBER_LINE.fullmatch(line.strip()):
        return "#"
    return re.sub(r"\s+", "", _DIGIT_RUN.sub("", line))


def _row_text(row: list[Word]) -> str:
    return " ".join(w.text for w in row)


def _edge_rows(words: list[Word]) -> list[list[Word]]:
    """The page's first and last :data:`EDGE_ROWS` lines (fewer on a short page)."""
    rows = rows_of(words)
    k = min(EDGE_ROWS, max(1, len(rows) // 3))
    return rows[:k] + rows[max(k, len(rows) - k):]


def running_lines(pages: Iterable[Any]) -> frozenset[str]:
    """The keys of the running heads and footers of a document's pages (see :data:`RUNNING_SHARE`), counted
    on its pages of three lines or more."""
    counts: dict[str, int] = {}
    total = 0
    for page in pages:
        try:
            words, angled = page_words(page)
        except Exception:  # a broken page has no running head to count
            continue
        words = drop_line_numbers(words)
        if len(rows_of(words)) < 3:
            continue  # a page of a line or two: what it says is its content, not a running head
        total += 1
        keys = {running_key(_row_text(row)) for row in _edge_rows(words)} | {running_key(a) for a in angled}
        for key in keys:
            counts[key] = counts.get(key, 0) + 1
    threshold = max(3, math.ceil(RUNNING_SHARE * total))
    return frozenset(key for key, n in counts.items() if n >= threshold)
