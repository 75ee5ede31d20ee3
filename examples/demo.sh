#!/usr/bin/env bash
# sockbox on a real program with built-in profiles: curl fetches a page from a web
# server on loopback, allowed by `localhost` and refused by `offline`.
set -u
cd "$(dirname "$0")/.."
sockbox=.venv/bin/sockbox
port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
.venv/bin/python -m http.server "$port" --bind 127.0.0.1 --directory examples >/dev/null 2>&1 &
server=$!
trap 'kill $server' EXIT
until curl -s -o /dev/null "http://127.0.0.1:$port/"; do sleep 0.1; done

url="http://127.0.0.1:$port/hello.txt"
echo "\$ sockbox run -p localhost -- curl -sS $url"
$sockbox run -p localhost -- curl -sS "$url"
echo "(exit status $?)"
echo
echo "\$ sockbox run -p offline -- curl -sS $url"
$sockbox run -p offline -- curl -sS "$url"
echo "(exit status $?)"
