"""Writes a sample camera card for the demo: real JPEGs with EXIF (GPS, orientation, capture time),
a portrait phone video, a Live Photo, a RAW+JPEG pair, an XMP sidecar, a PDF, a duplicate and the
junk a card carries, so one import shows every feature.

    .venv/bin/python scripts/sample_card.py DIR
"""

import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image

from tests.support.camera_files import make_iphone_still
from tests.support.media import make_jpeg, make_video

XMP = b"""<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="4"/></rdf:RDF></x:xmpmeta>
"""


def make_card(card: Path) -> None:
    apple, canon = card / "DCIM" / "100APPLE", card / "DCIM" / "100CANON"
    phone = {"make": "Apple", "model": "iPhone 15"}
    make_jpeg(apple / "IMG_0001.JPG", 4032, 3024, orientation=6, gps=(40.6892, -74.0445),
              taken="2024:05:06 07:08:09", seed=1, **phone)  # fmt: skip
    make_jpeg(
        apple / "IMG_0002.JPG",
        4032,
        3024,
        gps=(40.7061, -73.9969),
        taken="2024:05:06 08:00:00",
        seed=2,
        **phone,
    )
    (apple / "IMG_0002.xmp").write_bytes(XMP)
    make_video(
        apple / "IMG_0003.MOV", 1280, 720, seconds=3, rotate=90, creation_time="2024-05-06T08:05:00Z", seed=3
    )
    # A Live Photo: the still and its motion clip, one Apple identifier in both.
    live = "1F0C2E7A-5B3D-4C8E-9A61-0D2B4F6A8C10"
    make_iphone_still(apple / "IMG_0004.JPG", live, size=(2016, 1512), taken="2024:05:06 09:00:02", seed=4)
    make_video(
        apple / "IMG_0004.MOV",
        960,
        540,
        seconds=2,
        creation_time="2024-05-06T09:00:01Z",
        content_identifier=live,
        seed=4,
    )
    # RAW+JPEG: the camera wrote both; the RAW's thumbnail comes from its JPEG.
    make_jpeg(
        canon / "IMG_0100.JPG", 3000, 2000, make="Canon", model="EOS R5", taken="2024:05:07 10:00:00", seed=5
    )
    Image.new("RGB", (600, 400), (90, 120, 150)).save(canon / "IMG_0100.CR2", "TIFF")
    make_video(
        card / "PRIVATE" / "MVI_0200.MP4", 1920, 1080, seconds=3, creation_time="2024-05-07T11:00:00Z", seed=6
    )
    notes = card / "Documents" / "site-notes.pdf"
    notes.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (850, 1100), "white").save(notes, "PDF", title="Site notes", author="A. Surveyor")
    # The same photo again, as a backup folder on a card often has it: a duplicate.
    (card / "Backup").mkdir(exist_ok=True)
    shutil.copy2(apple / "IMG_0001.JPG", card / "Backup" / "IMG_0001.JPG")
    # Junk the import skips.
    (card / ".DS_Store").write_bytes(b"\0" * 64)
    (card / "DCIM" / "camera.cfg").write_text("iso=auto\n")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    make_card(Path(sys.argv[1]))
