"""Write the demo knowledge base's PDFs (an English and a Chinese user guide) into a folder.

    python examples/make_demo_docs.py examples/docs

The Markdown handbook beside them is committed as it is. ``write_pdf`` is also what the tests use to
make PDFs whose page contents they know.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Sequence

ENGLISH_GUIDE = [
    [
        "# Lumen L2 Solar Lantern: User Guide",
        "The Lumen L2 is a solar lantern for camping, power cuts and off-grid homes. It has a 5 W solar "
        "panel on its lid, a 4,400 mAh lithium iron phosphate battery and three brightness levels: 40, 150 "
        "and 400 lumens.",
        "In the box you will find the lantern, a USB-C cable, a carrying strap and this guide.",
    ],
    [
        "# Charging",
        "Place the lantern in direct sunlight with the panel facing the sky. A full charge from the sun "
        "takes about 10 hours on a clear summer day; from a 5 V USB-C charger it takes 4 hours.",
        "The charge indicator blinks green while charging and stays green when the battery is full. "
        "Charge the battery fully at least once every three months, even when the lantern is stored.",
    ],
    [
        "# Run time and care",
        "On the lowest setting (40 lumens) a full battery lasts 72 hours; on the middle setting 20 hours; "
        "on the highest setting 6 hours.",
        "The lantern is rated IP65: it withstands rain and splashing water but must not be submerged. "
        "Clean the panel with a damp cloth. Do not leave it in a closed car in summer: above 60 °C the "
        "battery protection switches the lantern off.",
        "# Warranty",
        "The Lumen L2 has a two-year warranty covering defects in materials and workmanship. The battery "
        "is covered for 2,000 charge cycles.",
    ],
]

CHINESE_GUIDE = [
    [
        "# 晴川 W3 家用气象站使用说明",
        "晴川 W3 是一款家用气象站，由室内显示屏和室外传感器组成。室外传感器测量温度、湿度和风速，"
        "每隔 48 秒通过 433 MHz 无线信号把数据发送到显示屏，无遮挡时传输距离可达 100 米。",
        "包装内含显示屏、室外传感器、电源适配器、两节 AA 电池和本说明书。",
    ],
    [
        "# 安装与配对",
        "先给室外传感器装入两节 AA 电池，再接通显示屏电源。显示屏会在三分钟内自动搜索传感器；"
        "若未找到，请长按显示屏背面的“配对”键五秒钟重新搜索。",
        "室外传感器应安装在离地面约 1.5 米、避免阳光直射的位置，否则温度读数会偏高。",
    ],
    [
        "# 保养与保修",
        "室外传感器的电池一般可使用十二个月。屏幕出现电池图标时，请及时更换电池。",
        "本产品自购买之日起保修一年。人为损坏、进水造成的故障不在保修范围内。",
    ],
]


def write_pdf(path: Path, pages: Sequence[Sequence[str]], chinese: bool = False) -> Path:
    """A PDF with one page per item of ``pages``; a paragraph starting with ``# `` is a heading."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate

    styles = getSampleStyleSheet()
    body, heading = styles["BodyText"], styles["Heading2"]
    if chinese:
        pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
        for style in (body, heading):
            style.fontName, style.wordWrap = "STSong-Light", "CJK"
    story: list[object] = []
    for number, paragraphs in enumerate(pages):
        if number:
            story.append(PageBreak())
        for paragraph in paragraphs:
            is_heading = paragraph.startswith("# ")
            story.append(Paragraph(paragraph.removeprefix("# "), heading if is_heading else body))
    path.parent.mkdir(parents=True, exist_ok=True)
    SimpleDocTemplate(str(path), pagesize=A4, title=path.stem, invariant=1).build(story)
    return path


def main(folder: str) -> None:
    target = Path(folder)
    write_pdf(target / "lumen-l2-guide.pdf", ENGLISH_GUIDE)
    write_pdf(target / "晴川-w3-说明书.pdf", CHINESE_GUIDE, chinese=True)
    print(f"demo documents in {target}: {', '.join(sorted(p.name for p in target.iterdir()))}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "examples/docs")
