# Sourced by scripts: finds the `rec` command of this checkout or install, without hard-coding it.
# Order: $REC_BIN, the installed venv beside the code (a release's, /opt/rec/releases/<version>/venv), the dev venv (.venv), PATH.
_rec_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -n "${REC_BIN:-}" ]; then
  rec_bin=$REC_BIN
elif [ -x "$_rec_root/venv/bin/rec" ]; then
  rec_bin=$_rec_root/venv/bin/rec
elif [ -x "$_rec_root/.venv/bin/rec" ]; then
  rec_bin=$_rec_root/.venv/bin/rec
elif command -v rec >/dev/null 2>&1; then
  rec_bin=$(command -v rec)
else
  echo "rec: cannot find the rec command (set REC_BIN, or install the venv)" >&2
  exit 1
fi
