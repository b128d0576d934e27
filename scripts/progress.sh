# Sourced by the set-up scripts. `progress WHAT CMD...` runs CMD and, while it runs,
# prints "  still WHAT (N min)..." every PROGRESS_EVERY seconds (default 60) on
# stderr, then how long it took; it returns CMD's exit status. Seconds are whole.
_progress_took() {
  if [ "$1" -lt 60 ]; then echo "$1 s"; else echo "$(( ($1 + 30) / 60 )) min"; fi
}

progress() {
  local what=$1 every=${PROGRESS_EVERY:-60} start=$SECONDS status=0
  shift
  (
    # The sleep is killed with the ticker, and holds no output open meanwhile:
    # `setup.sh | tee log` ends when the set-up does.
    trap 'kill "$nap" 2>/dev/null; exit 0' TERM
    ticks=0 nap=""
    while :; do
      sleep "$every" </dev/null >/dev/null 2>&1 &
      nap=$!
      wait "$nap"
      ticks=$((ticks + 1))
      echo "  still $what ($(_progress_took $((ticks * every))))..." >&2
    done
  ) &
  _progress_ticker=$!
  trap 'kill "$_progress_ticker" 2>/dev/null' EXIT
  "$@" || status=$?
  kill "$_progress_ticker" 2>/dev/null || true
  wait "$_progress_ticker" 2>/dev/null || true
  trap - EXIT
  if [ "$status" -eq 0 ]; then
    echo "  done: $what ($(_progress_took $((SECONDS - start))))" >&2
  fi
  return "$status"
}
