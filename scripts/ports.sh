# Sourced by the scripts that start services for the tests: choosing a TCP port to listen on.

# Prints a port nothing listens on. It is chosen below the kernel's range of ephemeral ports
# (net.ipv4.ip_local_port_range), which the tests running meanwhile take for every connection they open
# and every listener on port 0: a service that binds its port seconds after choosing it (after setting
# itself up) would otherwise find it taken now and then. With a file as $1, the ports it lists are
# skipped and the one chosen is added (for a service that needs several before it binds any).
free_port() {
    local taken=${1:-} low=32768 from=10000 span port
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
    span=$((low - from))
    # (An ephemeral range that starts low leaves no room below it: choose above it then.)
    if [ "$span" -lt 1000 ]; then from=20000 span=40000; fi
    while :; do
        port=$((from + (RANDOM * 32768 + RANDOM) % span))
        [ -z "$(ss -Hltn "sport = :$port" 2>/dev/null)" ] || continue
        if [ -n "$taken" ]; then
            ! grep -qx "$port" "$taken" 2>/dev/null || continue
            echo "$port" >>"$taken"
        fi
        echo "$port"
        return
    done
}
