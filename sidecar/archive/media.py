"""Media kinds and the app's extension lists (reference/original-app.md §1.2-1.3), case-insensitive."""

from enum import StrEnum


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


class MediaType(StrEnum):
    IMAGE = "image"
    VIDEO = "video"
    DOCUMENT = "document"
    MAP = "map"
    SIDECAR = "sidecar"


RAW_EXTENSIONS = _names(
    ".raw .cr2 .cr3 .nef .arw .orf .rw2 .pef .dng .srw .raf .3fr .dcr .kdc .mrw .nrw .rwl .sr2 "
    ".srf .x3f .erf .mef .mos"
)
IMAGE_EXTENSIONS = (
    _names(".jpg .jpeg .png .gif .bmp .webp .tiff .tif .heic .heif .avif .ico .svg") | RAW_EXTENSIONS
)
VIDEO_EXTENSIONS = _names(
    ".mp4 .mov .avi .mkv .webm .m4v .wmv .flv .mpg .mpeg .3gp .3g2 .mts .m2ts .ts .vob .ogv .rm "
    ".rmvb .asf .divx .f4v .swf .dv .insv .lrv"
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
# Exact names (lower-cased) never imported, files or folders; the last five are the archive's own.
SKIP_NAMES = _names(
    ".ds_store thumbs.db .spotlight-v100 .trashes .fseventsd desktop.ini .gitignore .git .svn "
    "__macosx .thumbnails .previews .posters .cache _database"
)
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


def classify(name: str) -> MediaType | None:
    """The media type of a file name, or None when it is not imported (unknown or skipped ext)."""
    extension = extension_of(name)
    if extension in SKIP_EXTENSIONS:
        return None
    return _BY_EXTENSION.get(extension)
