"""Table shapes: the app's tables as a new file must hold them, the columns we need from an existing
file, and this project's own `aus_` tables with their own version record.

It knows shapes only (reference/app-database.md §1, §7); connection rules live in `connection`.
"""

from collections.abc import Mapping
from types import MappingProxyType

import aiosqlite

from sidecar.db.transaction import immediate
from sidecar.errors import OwnSchemaTooNew

# The app already owns `sidecar_imports`, so our prefix must not be `sidecar_`.
OWN_PREFIX = "aus_"

# The app's tables in their complete final shape (reference §1). The app's migrations are guarded by
# "does column/table X exist?", so a partial table here makes the app skip a migration it needs and
# fail at its next start (§7.2). Hence every column, in the app's order, with the app's defaults;
# the media tables' ON DELETE clauses are written literally so the app's M43 rebuild is skipped.
# `jobs`, `import_sessions` and `job_dead_letter` are created together because the app's M49
# creates all three only when `jobs` is missing.
APP_SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS users (
  user_id TEXT PRIMARY KEY,
  username TEXT NOT NULL UNIQUE,
  display_name TEXT,
  created_date TEXT NOT NULL,
  pin_hash TEXT,
  is_active INTEGER DEFAULT 1,
  last_login TEXT
)""",
    "CREATE INDEX IF NOT EXISTS idx_users_username ON users(username)",
    """CREATE TABLE IF NOT EXISTS locs (
  locid TEXT PRIMARY KEY,
  loc12 TEXT UNIQUE NOT NULL,
  locnam TEXT NOT NULL,
  slocnam TEXT,
  akanam TEXT,
  type TEXT,
  stype TEXT,
  gps_lat REAL,
  gps_lng REAL,
  gps_accuracy REAL,
  gps_source TEXT,
  gps_verified_on_map INTEGER DEFAULT 0,
  gps_captured_at TEXT,
  gps_leaflet_data TEXT,
  address_street TEXT,
  address_city TEXT,
  address_county TEXT,
  address_state TEXT CHECK(length(address_state) = 2),
  address_zipcode TEXT,
  address_confidence TEXT,
  address_geocoded_at TEXT,
  condition TEXT,
  status TEXT,
  documentation TEXT,
  access TEXT,
  historic INTEGER DEFAULT 0,
  favorite INTEGER DEFAULT 0,
  sublocs TEXT,
  sub12 TEXT,
  locadd TEXT,
  locup TEXT,
  auth_imp TEXT,
  regions TEXT,
  state TEXT,
  hero_imghash TEXT,
  address_raw TEXT,
  address_normalized TEXT,
  address_parsed_json TEXT,
  address_source TEXT,
  gps_geocode_tier INTEGER,
  gps_geocode_query TEXT,
  address_verified INTEGER DEFAULT 0,
  address_verified_at TEXT,
  address_verified_by TEXT,
  gps_verified_at TEXT,
  gps_verified_by TEXT,
  location_verified INTEGER DEFAULT 0,
  location_verified_at TEXT,
  cultural_region TEXT,
  census_region TEXT,
  census_division TEXT,
  state_direction TEXT,
  built_year TEXT,
  built_type TEXT,
  abandoned_year TEXT,
  abandoned_type TEXT,
  project INTEGER DEFAULT 0,
  doc_interior INTEGER DEFAULT 0,
  doc_exterior INTEGER DEFAULT 0,
  doc_drone INTEGER DEFAULT 0,
  doc_web_history INTEGER DEFAULT 0,
  country_cultural_region TEXT,
  country_cultural_region_verified INTEGER DEFAULT 0,
  local_cultural_region_verified INTEGER DEFAULT 0,
  country TEXT DEFAULT 'United States',
  continent TEXT DEFAULT 'North America',
  historical_name TEXT,
  locnam_verified INTEGER DEFAULT 0,
  historical_name_verified INTEGER DEFAULT 0,
  akanam_verified INTEGER DEFAULT 0,
  doc_map_find INTEGER DEFAULT 0,
  status_changed_at TEXT,
  locnam_short TEXT,
  locnam_use_the INTEGER DEFAULT 0,
  hero_focal_x REAL DEFAULT 0.5,
  hero_focal_y REAL DEFAULT 0.5,
  created_by_id TEXT REFERENCES users(user_id),
  created_by TEXT,
  modified_by_id TEXT REFERENCES users(user_id),
  modified_by TEXT,
  modified_at TEXT,
  view_count INTEGER DEFAULT 0,
  last_viewed_at TEXT,
  bag_status TEXT DEFAULT 'none',
  bag_last_verified TEXT,
  bag_last_error TEXT,
  is_host_only INTEGER DEFAULT 0
)""",
    "CREATE INDEX IF NOT EXISTS idx_locs_state ON locs(address_state)",
    "CREATE INDEX IF NOT EXISTS idx_locs_type ON locs(type)",
    "CREATE INDEX IF NOT EXISTS idx_locs_gps ON locs(gps_lat, gps_lng) WHERE gps_lat IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS idx_locs_loc12 ON locs(loc12)",
    "CREATE INDEX IF NOT EXISTS idx_locs_favorite ON locs(favorite) WHERE favorite = 1",
    """CREATE INDEX IF NOT EXISTS idx_locs_map_bounds ON locs(gps_lat, gps_lng, locid, locnam, type,
  gps_verified_on_map, address_state, address_city, favorite)
  WHERE gps_lat IS NOT NULL AND gps_lng IS NOT NULL""",
    """CREATE INDEX IF NOT EXISTS idx_locs_hero_imghash ON locs(hero_imghash)
  WHERE hero_imghash IS NOT NULL""",
    """CREATE INDEX IF NOT EXISTS idx_locs_verified ON locs(location_verified)
  WHERE location_verified = 1""",
    """CREATE INDEX IF NOT EXISTS idx_locs_address_verified ON locs(address_verified)
  WHERE address_verified = 1""",
    """CREATE INDEX IF NOT EXISTS idx_locs_census_region ON locs(census_region)
  WHERE census_region IS NOT NULL""",
    """CREATE INDEX IF NOT EXISTS idx_locs_census_division ON locs(census_division)
  WHERE census_division IS NOT NULL""",
    """CREATE INDEX IF NOT EXISTS idx_locs_cultural_region ON locs(cultural_region)
  WHERE cultural_region IS NOT NULL""",
    "CREATE INDEX IF NOT EXISTS idx_locs_project ON locs(project) WHERE project = 1",
    """CREATE INDEX IF NOT EXISTS idx_locs_country_cultural_region ON locs(country_cultural_region)
  WHERE country_cultural_region IS NOT NULL""",
    """CREATE INDEX IF NOT EXISTS idx_locs_created_by_id ON locs(created_by_id)
  WHERE created_by_id IS NOT NULL""",
    """CREATE INDEX IF NOT EXISTS idx_locs_modified_by_id ON locs(modified_by_id)
  WHERE modified_by_id IS NOT NULL""",
    """CREATE INDEX IF NOT EXISTS idx_locs_bag_status ON locs(bag_status)
  WHERE bag_status != 'valid'""",
    """CREATE TABLE IF NOT EXISTS slocs (
  subid TEXT PRIMARY KEY,
  sub12 TEXT UNIQUE NOT NULL,
  locid TEXT NOT NULL REFERENCES locs(locid) ON DELETE CASCADE,
  subnam TEXT NOT NULL,
  ssubname TEXT,
  type TEXT,
  status TEXT,
  hero_imghash TEXT REFERENCES imgs(imghash),
  is_primary INTEGER DEFAULT 0,
  created_date TEXT,
  created_by TEXT,
  modified_date TEXT,
  modified_by TEXT,
  gps_lat REAL,
  gps_lng REAL,
  gps_accuracy REAL,
  gps_source TEXT,
  gps_verified_on_map INTEGER DEFAULT 0,
  gps_captured_at TEXT,
  akanam TEXT,
  historicalName TEXT,
  UNIQUE(subnam, locid)
)""",
    "CREATE INDEX IF NOT EXISTS idx_slocs_locid ON slocs(locid)",
    "CREATE INDEX IF NOT EXISTS idx_slocs_is_primary ON slocs(is_primary) WHERE is_primary = 1",
    "CREATE INDEX IF NOT EXISTS idx_slocs_type ON slocs(type) WHERE type IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS idx_slocs_gps ON slocs(gps_lat, gps_lng) WHERE gps_lat IS NOT NULL",
    """CREATE TABLE IF NOT EXISTS settings (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS imgs (
  imghash TEXT PRIMARY KEY,
  imgnam TEXT NOT NULL,
  imgnamo TEXT NOT NULL,
  imgloc TEXT NOT NULL,
  imgloco TEXT NOT NULL,
  locid TEXT REFERENCES locs(locid) ON DELETE CASCADE,
  subid TEXT REFERENCES slocs(subid) ON DELETE SET NULL,
  auth_imp TEXT,
  imgadd TEXT,
  meta_exiftool TEXT,
  meta_width INTEGER,
  meta_height INTEGER,
  meta_date_taken TEXT,
  meta_camera_make TEXT,
  meta_camera_model TEXT,
  meta_gps_lat REAL,
  meta_gps_lng REAL,
  thumb_path TEXT,
  preview_path TEXT,
  preview_extracted INTEGER DEFAULT 0,
  xmp_synced INTEGER DEFAULT 0,
  xmp_modified_at TEXT,
  thumb_path_sm TEXT,
  thumb_path_lg TEXT,
  darktable_path TEXT,
  darktable_processed INTEGER DEFAULT 0,
  darktable_processed_at TEXT,
  hidden INTEGER DEFAULT 0,
  hidden_reason TEXT,
  is_live_photo INTEGER DEFAULT 0,
  imported_by_id TEXT,
  imported_by TEXT,
  media_source TEXT,
  is_contributed INTEGER DEFAULT 0,
  contribution_source TEXT,
  preview_quality TEXT DEFAULT 'embedded',
  file_size_bytes INTEGER
)""",
    "CREATE INDEX IF NOT EXISTS idx_imgs_locid ON imgs(locid)",
    "CREATE INDEX IF NOT EXISTS idx_imgs_subid ON imgs(subid)",
    "CREATE INDEX IF NOT EXISTS idx_imgs_sha ON imgs(imghash)",
    "CREATE INDEX IF NOT EXISTS idx_imgs_thumb_path ON imgs(thumb_path)",
    "CREATE INDEX IF NOT EXISTS idx_imgs_thumb_sm ON imgs(thumb_path_sm)",
    """CREATE INDEX IF NOT EXISTS idx_imgs_darktable ON imgs(darktable_processed)
  WHERE darktable_processed = 0""",
    "CREATE INDEX IF NOT EXISTS idx_imgs_hidden ON imgs(hidden) WHERE hidden = 1",
    """CREATE INDEX IF NOT EXISTS idx_imgs_live_photo ON imgs(is_live_photo)
  WHERE is_live_photo = 1""",
    """CREATE INDEX IF NOT EXISTS idx_imgs_imported_by_id ON imgs(imported_by_id)
  WHERE imported_by_id IS NOT NULL""",
    """CREATE INDEX IF NOT EXISTS idx_imgs_preview_quality ON imgs(preview_quality)
  WHERE preview_quality = 'low'""",
    """CREATE TABLE IF NOT EXISTS vids (
  vidhash TEXT PRIMARY KEY,
  vidnam TEXT NOT NULL,
  vidnamo TEXT NOT NULL,
  vidloc TEXT NOT NULL,
  vidloco TEXT NOT NULL,
  locid TEXT REFERENCES locs(locid) ON DELETE CASCADE,
  subid TEXT REFERENCES slocs(subid) ON DELETE SET NULL,
  auth_imp TEXT,
  vidadd TEXT,
  meta_ffmpeg TEXT,
  meta_exiftool TEXT,
  meta_duration REAL,
  meta_width INTEGER,
  meta_height INTEGER,
  meta_codec TEXT,
  meta_fps REAL,
  meta_date_taken TEXT,
  meta_gps_lat REAL,
  meta_gps_lng REAL,
  thumb_path TEXT,
  poster_extracted INTEGER DEFAULT 0,
  xmp_synced INTEGER DEFAULT 0,
  xmp_modified_at TEXT,
  thumb_path_sm TEXT,
  thumb_path_lg TEXT,
  preview_path TEXT,
  hidden INTEGER DEFAULT 0,
  hidden_reason TEXT,
  is_live_photo INTEGER DEFAULT 0,
  imported_by_id TEXT,
  imported_by TEXT,
  media_source TEXT,
  is_contributed INTEGER DEFAULT 0,
  contribution_source TEXT,
  file_size_bytes INTEGER,
  srt_telemetry TEXT
)""",
    "CREATE INDEX IF NOT EXISTS idx_vids_locid ON vids(locid)",
    "CREATE INDEX IF NOT EXISTS idx_vids_subid ON vids(subid)",
    "CREATE INDEX IF NOT EXISTS idx_vids_thumb_path ON vids(thumb_path)",
    "CREATE INDEX IF NOT EXISTS idx_vids_thumb_sm ON vids(thumb_path_sm)",
    "CREATE INDEX IF NOT EXISTS idx_vids_hidden ON vids(hidden) WHERE hidden = 1",
    """CREATE INDEX IF NOT EXISTS idx_vids_live_photo ON vids(is_live_photo)
  WHERE is_live_photo = 1""",
    """CREATE INDEX IF NOT EXISTS idx_vids_imported_by_id ON vids(imported_by_id)
  WHERE imported_by_id IS NOT NULL""",
    """CREATE TABLE IF NOT EXISTS docs (
  dochash TEXT PRIMARY KEY,
  docnam TEXT NOT NULL,
  docnamo TEXT NOT NULL,
  docloc TEXT NOT NULL,
  docloco TEXT NOT NULL,
  locid TEXT REFERENCES locs(locid) ON DELETE CASCADE,
  subid TEXT REFERENCES slocs(subid) ON DELETE SET NULL,
  auth_imp TEXT,
  docadd TEXT,
  meta_exiftool TEXT,
  meta_page_count INTEGER,
  meta_author TEXT,
  meta_title TEXT,
  hidden INTEGER DEFAULT 0,
  hidden_reason TEXT,
  imported_by_id TEXT,
  imported_by TEXT,
  media_source TEXT,
  is_contributed INTEGER DEFAULT 0,
  contribution_source TEXT,
  file_size_bytes INTEGER
)""",
    "CREATE INDEX IF NOT EXISTS idx_docs_locid ON docs(locid)",
    "CREATE INDEX IF NOT EXISTS idx_docs_hidden ON docs(hidden) WHERE hidden = 1",
    """CREATE TABLE IF NOT EXISTS maps (
  maphash TEXT PRIMARY KEY,
  mapnam TEXT NOT NULL,
  mapnamo TEXT NOT NULL,
  maploc TEXT NOT NULL,
  maploco TEXT NOT NULL,
  locid TEXT REFERENCES locs(locid) ON DELETE CASCADE,
  subid TEXT REFERENCES slocs(subid) ON DELETE SET NULL,
  auth_imp TEXT,
  mapadd TEXT,
  meta_exiftool TEXT,
  meta_map TEXT,
  meta_gps_lat REAL,
  meta_gps_lng REAL,
  reference TEXT,
  map_states TEXT,
  map_verified INTEGER DEFAULT 0,
  thumb_path_sm TEXT,
  thumb_path_lg TEXT,
  preview_path TEXT,
  imported_by_id TEXT,
  imported_by TEXT,
  media_source TEXT,
  file_size_bytes INTEGER
)""",
    "CREATE INDEX IF NOT EXISTS idx_maps_locid ON maps(locid)",
    "CREATE INDEX IF NOT EXISTS idx_maps_thumb_sm ON maps(thumb_path_sm)",
    # Created with `locs` in this group because the app's M25 creates it only when
    # `locs.created_by_id` is missing, which it is not here.
    """CREATE TABLE IF NOT EXISTS location_authors (
  locid TEXT NOT NULL REFERENCES locs(locid) ON DELETE CASCADE,
  user_id TEXT NOT NULL REFERENCES users(user_id) ON DELETE CASCADE,
  role TEXT NOT NULL DEFAULT 'contributor',
  added_at TEXT NOT NULL,
  PRIMARY KEY (locid, user_id)
)""",
    "CREATE INDEX IF NOT EXISTS idx_location_authors_locid ON location_authors(locid)",
    "CREATE INDEX IF NOT EXISTS idx_location_authors_user_id ON location_authors(user_id)",
    """CREATE TABLE IF NOT EXISTS imports (
  import_id TEXT PRIMARY KEY,
  locid TEXT REFERENCES locs(locid) ON DELETE CASCADE,
  import_date TEXT NOT NULL,
  auth_imp TEXT,
  img_count INTEGER DEFAULT 0,
  vid_count INTEGER DEFAULT 0,
  doc_count INTEGER DEFAULT 0,
  map_count INTEGER DEFAULT 0,
  notes TEXT
)""",
    "CREATE INDEX IF NOT EXISTS idx_imports_date ON imports(import_date DESC)",
    "CREATE INDEX IF NOT EXISTS idx_imports_locid ON imports(locid)",
    """CREATE TABLE IF NOT EXISTS jobs (
  job_id TEXT PRIMARY KEY,
  queue TEXT NOT NULL,
  priority INTEGER DEFAULT 10,
  status TEXT DEFAULT 'pending'
    CHECK(status IN ('pending','processing','completed','failed','dead')),
  payload TEXT NOT NULL,
  depends_on TEXT,
  attempts INTEGER DEFAULT 0,
  max_attempts INTEGER DEFAULT 3,
  error TEXT,
  result TEXT,
  created_at TEXT DEFAULT CURRENT_TIMESTAMP,
  started_at TEXT,
  completed_at TEXT,
  locked_by TEXT,
  locked_at TEXT,
  retry_after TEXT,
  last_error TEXT
)""",
    """CREATE INDEX IF NOT EXISTS idx_jobs_queue_status_priority
  ON jobs(queue, status, priority DESC)""",
    """CREATE INDEX IF NOT EXISTS idx_jobs_depends_on ON jobs(depends_on)
  WHERE depends_on IS NOT NULL""",
    "CREATE INDEX IF NOT EXISTS idx_jobs_locked_at ON jobs(locked_at) WHERE locked_at IS NOT NULL",
    """CREATE INDEX IF NOT EXISTS idx_jobs_retry_after ON jobs(retry_after)
  WHERE retry_after IS NOT NULL""",
    # `locid` deliberately has no ON DELETE action: that is the app's M49 shape.
    """CREATE TABLE IF NOT EXISTS import_sessions (
  session_id TEXT PRIMARY KEY,
  locid TEXT NOT NULL REFERENCES locs(locid),
  status TEXT DEFAULT 'pending' CHECK(status IN ('pending','scanning','hashing','copying',
    'validating','finalizing','completed','cancelled','failed')),
  source_paths TEXT NOT NULL,
  copy_strategy TEXT,
  total_files INTEGER DEFAULT 0,
  processed_files INTEGER DEFAULT 0,
  duplicate_files INTEGER DEFAULT 0,
  error_files INTEGER DEFAULT 0,
  total_bytes INTEGER DEFAULT 0,
  processed_bytes INTEGER DEFAULT 0,
  started_at TEXT DEFAULT CURRENT_TIMESTAMP,
  completed_at TEXT,
  error TEXT,
  can_resume INTEGER DEFAULT 1,
  last_step INTEGER DEFAULT 0,
  scan_result TEXT,
  hash_results TEXT,
  copy_results TEXT,
  validation_results TEXT
)""",
    """CREATE INDEX IF NOT EXISTS idx_import_sessions_status ON import_sessions(status)
  WHERE status NOT IN ('completed', 'cancelled')""",
    "CREATE INDEX IF NOT EXISTS idx_import_sessions_locid ON import_sessions(locid)",
    """CREATE TABLE IF NOT EXISTS job_dead_letter (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id TEXT NOT NULL,
  queue TEXT NOT NULL,
  payload TEXT NOT NULL,
  error TEXT,
  attempts INTEGER,
  failed_at TEXT DEFAULT CURRENT_TIMESTAMP,
  acknowledged INTEGER DEFAULT 0
)""",
    """CREATE INDEX IF NOT EXISTS idx_job_dead_letter_queue
  ON job_dead_letter(queue, acknowledged)""",
    # No FK to vids, as in the app's final shape (its M36 delete trigger is gone after M43).
    """CREATE TABLE IF NOT EXISTS video_proxies (
  vidhash TEXT PRIMARY KEY,
  proxy_path TEXT NOT NULL,
  generated_at TEXT NOT NULL,
  last_accessed TEXT NOT NULL,
  file_size_bytes INTEGER,
  original_width INTEGER,
  original_height INTEGER,
  proxy_width INTEGER,
  proxy_height INTEGER,
  proxy_version INTEGER DEFAULT 1
)""",
    """CREATE INDEX IF NOT EXISTS idx_video_proxies_last_accessed
  ON video_proxies(last_accessed)""",
)

# The app's M24 would seed this, but it is skipped because `users.pin_hash` already exists.
APP_SEED: tuple[str, ...] = ("INSERT OR IGNORE INTO settings(key, value) VALUES ('app_mode', 'single')",)


def imported_columns(prefix: str) -> tuple[str, ...]:
    """The columns an import writes to one media table (`img`, `vid`, `doc`, `map`), in order."""
    return (
        f"{prefix}hash",
        f"{prefix}nam",
        f"{prefix}namo",
        f"{prefix}loc",
        f"{prefix}loco",
        "locid",
        "subid",
        "auth_imp",
        f"{prefix}add",
        "imported_by_id",
        "imported_by",
        "file_size_bytes",
        # The maps table has no contribution columns (the app rebuilt it without them: M43).
        *(() if prefix == "map" else ("is_contributed", "contribution_source")),
    )


def _media(prefix: str, *extra: str) -> tuple[str, ...]:
    """The columns an import writes to one media table, then what its background jobs fill."""
    return (*imported_columns(prefix), "meta_exiftool", *extra)


# What this project reads or writes in an existing app file (never altered there): checked at start
# so a file from an older app is refused up front instead of failing mid-import.
REQUIRED_COLUMNS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "settings": ("key", "value"),
        "users": ("user_id", "username"),
        "locs": (
            "locid",
            "loc12",
            "locnam",
            "slocnam",
            "type",
            "address_state",
            "bag_status",
            "bag_last_verified",
            "bag_last_error",
        ),
        "slocs": ("subid", "locid"),
        "imgs": _media(
            "img",
            "hidden",
            "hidden_reason",
            "meta_width",
            "meta_height",
            "meta_date_taken",
            "meta_camera_make",
            "meta_camera_model",
            "meta_gps_lat",
            "meta_gps_lng",
            "thumb_path",
            "thumb_path_sm",
            "thumb_path_lg",
            "preview_path",
            "preview_extracted",
            "is_live_photo",
            "preview_quality",
        ),
        "vids": _media(
            "vid",
            "hidden",
            "hidden_reason",
            "meta_ffmpeg",
            "meta_duration",
            "meta_width",
            "meta_height",
            "meta_codec",
            "meta_fps",
            "meta_date_taken",
            "meta_gps_lat",
            "meta_gps_lng",
            "thumb_path",
            "thumb_path_sm",
            "thumb_path_lg",
            "preview_path",
            "poster_extracted",
            "is_live_photo",
        ),
        "docs": _media("doc", "hidden", "hidden_reason", "meta_page_count", "meta_author", "meta_title"),
        "maps": _media("map", "meta_gps_lat", "meta_gps_lng"),
        "imports": (
            "import_id",
            "locid",
            "import_date",
            "auth_imp",
            "img_count",
            "vid_count",
            "doc_count",
            "map_count",
            "notes",
        ),
        "import_sessions": (
            "session_id",
            "locid",
            "status",
            "source_paths",
            "copy_strategy",
            "total_files",
            "processed_files",
            "duplicate_files",
            "error_files",
            "total_bytes",
            "processed_bytes",
            "started_at",
            "completed_at",
            "error",
            "can_resume",
            "last_step",
            "scan_result",
            "hash_results",
            "copy_results",
            "validation_results",
        ),
        "jobs": (
            "job_id",
            "queue",
            "priority",
            "status",
            "payload",
            "depends_on",
            "attempts",
            "max_attempts",
            "error",
            "result",
            "created_at",
            "started_at",
            "completed_at",
            "locked_by",
            "locked_at",
            "retry_after",
            "last_error",
        ),
        "job_dead_letter": (
            "id",
            "job_id",
            "queue",
            "payload",
            "error",
            "attempts",
            "failed_at",
            "acknowledged",
        ),
        "video_proxies": (
            "vidhash",
            "proxy_path",
            "generated_at",
            "last_accessed",
            "file_size_bytes",
            "original_width",
            "original_height",
            "proxy_width",
            "proxy_height",
            "proxy_version",
        ),
    }
)


def later_app_differences(existing: Mapping[str, set[str]]) -> list[str]:
    """What marks the later generation of the app (bizzlechizzle/abandoned-archive, its
    electron/main/database.ts: migration 67 renamed locs.type to category; ADR-046 dropped loc12
    and made ids 16-hex BLAKE3 hashes). Empty for the first generation's database."""
    locs = existing.get("locs", set())
    if "category" not in locs or "type" in locs:
        return []
    differences = ["locs.category instead of locs.type"]
    if "loc12" not in locs:
        differences.append("no locs.loc12")
    return differences


def missing_columns(existing: Mapping[str, set[str]]) -> list[str]:
    """What REQUIRED_COLUMNS lacks in `existing` ({table: column names}): `table` or `table.column`."""
    missing: list[str] = []
    for table, columns in REQUIRED_COLUMNS.items():
        present = existing.get(table)
        if present is None:
            missing.append(table)
        else:
            missing.extend(f"{table}.{column}" for column in columns if column not in present)
    return sorted(missing)


# Our own tables, one step per version, applied in order and never edited once released: a file
# records how far it got in `aus_meta`, never in `PRAGMA user_version`, which is the app's.
_OWN_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # v1: the version record itself.
    ("CREATE TABLE IF NOT EXISTS aus_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",),
    # v2: the import journal. What the app's import_sessions row cannot hold: the location values
    # the import was started with, its archive root and importing user (fixed for its whole life,
    # resumes included), and one row per file with that file's progress through the five steps,
    # so a resume continues per file and memory stays flat however many files there are.
    (
        """CREATE TABLE aus_import_sessions (
  session_id TEXT PRIMARY KEY,
  request TEXT NOT NULL,
  archive_root TEXT NOT NULL,
  import_id TEXT NOT NULL,
  user_id TEXT,
  username TEXT,
  skipped INTEGER NOT NULL DEFAULT 0,
  jobs_queued INTEGER NOT NULL DEFAULT 0,
  queued_at TEXT NOT NULL
)""",
        # `source` is the path's bytes (os.fsencode): file names need not be valid UTF-8.
        """CREATE TABLE aus_import_files (
  session_id TEXT NOT NULL,
  file_id INTEGER NOT NULL,
  source BLOB NOT NULL,
  size INTEGER NOT NULL,
  media_type TEXT NOT NULL,
  extension TEXT NOT NULL,
  parent_id INTEGER,
  raw_pair_id INTEGER,
  live_pair_id INTEGER,
  state TEXT NOT NULL,
  hash TEXT,
  target TEXT,
  strategy TEXT,
  error_step TEXT,
  error TEXT,
  PRIMARY KEY (session_id, file_id)
) WITHOUT ROWID""",
        "CREATE INDEX aus_import_files_state ON aus_import_files (session_id, state, file_id)",
        "CREATE INDEX aus_import_files_hash ON aus_import_files (session_id, hash)",
    ),
    # v3: a parent's sidecars, found when the parent is finalized (they are finalized with it).
    (
        "CREATE INDEX aus_import_files_sidecars ON aus_import_files (session_id, parent_id)"
        " WHERE media_type = 'sidecar'",
    ),
    # v4: what the scan skipped, with why, so the result can name it (`source` as in v2).
    (
        """CREATE TABLE aus_import_skipped (
  session_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  source BLOB NOT NULL,
  reason TEXT NOT NULL,
  PRIMARY KEY (session_id, seq)
) WITHOUT ROWID""",
    ),
    # v5: the windows an import's files go through, in the order they are read (pipeline/windows.py),
    # cut while the scan runs: a resume follows the windows its run cut, then cuts on.
    (
        """CREATE TABLE aus_import_windows (
  session_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  first_id INTEGER NOT NULL,
  last_id INTEGER NOT NULL,
  PRIMARY KEY (session_id, seq)
) WITHOUT ROWID""",
    ),
)
OWN_SCHEMA_VERSION: int = len(_OWN_MIGRATIONS)


async def _own_version(conn: aiosqlite.Connection) -> int:
    async with conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'aus_meta'"
    ) as cursor:
        if await cursor.fetchone() is None:
            return 0
    async with conn.execute("SELECT value FROM aus_meta WHERE key = 'schema_version'") as cursor:
        row = await cursor.fetchone()
    return 0 if row is None else int(row[0])


async def ensure_own_schema(conn: aiosqlite.Connection) -> None:
    """Bring the `aus_` tables up to OWN_SCHEMA_VERSION; raises OwnSchemaTooNew for a newer file."""
    version = await _own_version(conn)
    if version > OWN_SCHEMA_VERSION:
        raise OwnSchemaTooNew(version, OWN_SCHEMA_VERSION)
    for target, statements in enumerate(_OWN_MIGRATIONS[version:], start=version + 1):
        async with immediate(conn):
            # Read again under the write lock: another process may have applied this step meanwhile.
            if await _own_version(conn) >= target:
                continue
            for statement in statements:
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO aus_meta (key, value) VALUES ('schema_version', ?)"
                " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (str(target),),
            )
