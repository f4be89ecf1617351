"""The one map from a media kind to the app's table for it and the names of its columns
(reference/app-database.md: `imgs.imghash`, `vids.vidloc`, `imports.img_count`, …)."""

from dataclasses import dataclass

from sidecar.archive.media import MediaType


@dataclass(frozen=True, slots=True)
class MediaTable:
    kind: MediaType
    table: str  # imgs
    prefix: str  # img: the app names the columns imghash, imgloc, imgnamo, …
    plural: str  # images: how location stats name the kind

    def column(self, name: str) -> str:
        """`column("hash")` → `imghash`."""
        return self.prefix + name

    @property
    def hash_column(self) -> str:
        return self.prefix + "hash"

    @property
    def path_column(self) -> str:
        """The archived file's absolute path."""
        return self.prefix + "loc"

    @property
    def count_column(self) -> str:
        """The import's count of this kind in `imports`."""
        return self.prefix + "_count"


MEDIA_TABLES: dict[MediaType, MediaTable] = {
    MediaType.IMAGE: MediaTable(MediaType.IMAGE, "imgs", "img", "images"),
    MediaType.VIDEO: MediaTable(MediaType.VIDEO, "vids", "vid", "videos"),
    MediaType.DOCUMENT: MediaTable(MediaType.DOCUMENT, "docs", "doc", "documents"),
    MediaType.MAP: MediaTable(MediaType.MAP, "maps", "map", "maps"),
}


def media_table(kind: MediaType) -> MediaTable:
    """The app's table for a kind of media (sidecars have none: KeyError)."""
    return MEDIA_TABLES[kind]
