#!/usr/bin/env bash
# Rejects calls the house style bans in C sources (curl's checksrc): strcpy, strcat, sprintf,
# vsprintf, strtok, atoi, atol, atof, gets. Prints each hit as file:line and fails if any.
set -euo pipefail
cd "$(dirname "$0")/../.."
hits=$(grep -rnE '\b(strcpy|strcat|sprintf|vsprintf|strtok|atoi|atol|atof|gets)[[:space:]]*\(' \
  --include='*.c' --include='*.h' common services gateway tests bench 2>/dev/null \
  | grep -vE '\b(snprintf|vsnprintf|fgets|strtok_r)\b' || true)
# A name that merely contains a banned word (cm_atoi_x) is not a call of it.
hits=$(printf '%s\n' "$hits" | grep -E '(^|[^A-Za-z0-9_])(strcpy|strcat|sprintf|vsprintf|strtok|atoi|atol|atof|gets)[[:space:]]*\(' || true)
if [ -n "$hits" ]; then
  echo "banned calls:"
  echo "$hits"
  echo "0 passed, 1 failed"
  exit 1
fi
echo "1 passed, 0 failed"
