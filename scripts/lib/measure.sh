# Shell helpers shared by the measurement scripts (scripts/measure-*.sh). Source it; it defines functions only.
# Every address is loopback (127.0.0.1).

# A TCP port free on 127.0.0.1 right now. The kernel picks it, then it is released for the program to bind: another
# process could take it in between, so the scripts that use it say so when a start fails.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits until something accepts connections on 127.0.0.1:PORT; exits the script after TRIES tries DELAY apart.
wait_port() { # PORT [TRIES=100] [DELAY=0.1]
  local tries=${2:-100} delay=${3:-0.1}
  for _ in $(seq 1 "$tries"); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep "$delay"; done
  echo "port $1 never opened" >&2
  exit 1
}

# The median of the numbers given as arguments (the mean of the middle two for an even count).
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# CPU time (user + system) a running process has used, in clock ticks; 0 once it is gone.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }

# Clock ticks as seconds, two decimals.
ticks_to_secs() { awk -v t="$1" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", t / hz }'; }
