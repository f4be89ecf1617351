"""Media kinds, the extension lists and which names are never imported (and why), case-insensitive.

The lists are the app's (reference/original-app.md §1.2-1.3) extended with every still and video
format a camera writes that Lightroom Classic imports: Adobe's "supported file formats" page
(helpx.adobe.com/lightroom/help/supported-file-formats.html) and Camera Raw's list of raw
extensions. The README lists them.
"""

from enum import StrEnum


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


class MediaType(StrEnum):
    IMAGE = "image"
    VIDEO = "video"
    DOCUMENT = "document"
    MAP = "map"
    SIDECAR = "sidecar"


# The app's RAW list, then the camera originals it missed: Canon CRW, GoPro GPR, Phase One IIQ/CAP/
# EIP, Hasselblad FFF, Leica RWL's siblings, Kodak DCS/K25/MDC, Mamiya MEF's kin, Sinar, Pentax PTX.
RAW_EXTENSIONS = _names(
    ".raw .cr2 .cr3 .nef .arw .orf .rw2 .pef .dng .srw .raf .3fr .dcr .kdc .mrw .nrw .rwl .sr2 "
    ".srf .x3f .erf .mef .mos "
    ".crw .gpr .iiq .cap .eip .fff .ari .bay .dcs .drf .k25 .mdc .ptx .pxn .rwz"
)
# The app's stills, then HEIF as Canon and Sony name it (.hif), Kodak FlashPix, 3D cameras' MPO,
# JPEG XL and JPEG 2000.
IMAGE_EXTENSIONS = (
    _names(".jpg .jpeg .png .gif .bmp .webp .tiff .tif .heic .heif .avif .ico .svg")
    | _names(".hif .fpx .mpo .jxl .jp2 .j2k .jpf .jpx")
    | RAW_EXTENSIONS
)
VIDEO_EXTENSIONS = _names(
    ".mp4 .mov .avi .mkv .webm .m4v .wmv .flv .mpg .mpeg .3gp .3g2 .mts .m2ts .ts .vob .ogv .rm "
    ".rmvb .asf .divx .f4v .swf .dv .insv .lrv .3gpp .mod .tod"
)
DOCUMENT_EXTENSIONS = _names(
    ".pdf .doc .docx .xls .xlsx .ppt .pptx .txt .rtf .odt .ods .odp .epub .mobi .djvu .pages "
    ".numbers .key .md .csv"
)
# `.tif` is also a map extension in the app, but image is checked first, so it is always an image.
MAP_EXTENSIONS = _names(".gpx .kml .kmz .geojson .shp .geotiff")
SIDECAR_EXTENSIONS = _names(".xmp .srt .thm .lrf .json .xml")
# Skipped even though some are listed above (`.psd` is an image in the app's list, then skipped).
SKIP_EXTENSIONS = _names(".aae .psb .psd .acr")
# What operating systems leave on cards and drives (lower-cased exact names, files or folders).
SYSTEM_NAMES = frozenset(
    {
        ".ds_store", ".spotlight-v100", ".trashes", ".fseventsd", ".temporaryitems", ".apdisk",
        ".documentrevisions-v100", ".volumeicon.icns", "__macosx",
        "thumbs.db", "ehthumbs.db", "desktop.ini", "system volume information", "$recycle.bin",
    }
)  # fmt: skip
# The archive's own folders (an archive copied onto a source must not be imported into itself).
ARCHIVE_NAMES = _names(".thumbnails .previews .posters .cache _database")
JPEG_EXTENSIONS = frozenset({".jpg", ".jpeg"})
LIVE_IMAGE_EXTENSIONS = frozenset({".heic", ".heif", ".jpg", ".jpeg"})
LIVE_VIDEO_EXTENSIONS = frozenset({".mov", ".mp4"})

# The app checks sidecar first, then image, video, document, map.
_BY_EXTENSION: dict[str, MediaType] = {
    **{e: MediaType.MAP for e in MAP_EXTENSIONS},
    **{e: MediaType.DOCUMENT for e in DOCUMENT_EXTENSIONS},
    **{e: MediaType.VIDEO for e in VIDEO_EXTENSIONS},
    **{e: MediaType.IMAGE for e in IMAGE_EXTENSIONS},
    **{e: MediaType.SIDECAR for e in SIDECAR_EXTENSIONS},
}

# Folder and table naming per type: org-img-<LOC12>, imgs.imghash, ...
FOLDER_KIND = {
    MediaType.IMAGE: "img",
    MediaType.VIDEO: "vid",
    MediaType.DOCUMENT: "doc",
    MediaType.MAP: "map",
    MediaType.SIDECAR: "misc",
}


def extension_of(name: str) -> str:
    """The last dot segment, lower-cased, with its dot ('' when there is none), as Node's extname."""
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def exclusion(name: str, folder: bool) -> str | None:
    """Why a name met inside a walked folder is never imported (None: it may be). The app skips
    the same names, but silently; these reasons name them in the import's result."""
    lower = name.lower()
    what = "folder" if folder else "file"
    if lower.startswith("._") and not folder:
        return "AppleDouble file (macOS metadata of another file, not media)"
    if lower in SYSTEM_NAMES:
        return f"system {what} (left by macOS or Windows, not media)"
    if lower in ARCHIVE_NAMES:
        return f"the archive's own {what}"
    if lower.startswith("."):
        return f"hidden {what}"
    return None


def unimported_reason(name: str) -> str | None:
    """Why a file's extension keeps it out of the import (None: it is imported)."""
    extension = extension_of(name)
    if extension in SKIP_EXTENSIONS:
        return f"{extension} files are not imported (the app's rule)"
    if extension not in _BY_EXTENSION:
        return f"unknown extension ({extension})" if extension else "no extension"
    return None


def classify(name: str) -> MediaType | None:
    """The media type of a file name, or None when it is not imported (unknown or skipped ext)."""
    extension = extension_of(name)
    if extension in SKIP_EXTENSIONS:
        return None
    return _BY_EXTENSION.get(extension)
