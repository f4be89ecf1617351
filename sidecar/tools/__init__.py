"""The external tools (exiftool, ffprobe, ffmpeg): finding them and their versions (`discovery`),
running one for a job (`process`), the long-lived exiftool processes (`exiftool`), and what ffprobe
says about a video (`ffprobe`). Nothing here knows the job queue or the database."""
