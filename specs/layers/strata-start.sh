#!/bin/sh
# strata-start: the default command of Strata's JupyterLab/SSH images
# (layers/start.yaml; docs/flagship.md). Run as `tini -g -- strata-start`:
# tini reaps zombies and passes signals to every process started here.
#
#   SSH_AUTHORIZED_KEYS          public keys, one a line (or mount ~/.ssh/authorized_keys)
#   SSH_PASSWORD_HASH[_FILE]     a crypt(3) hash (`openssl passwd -6`): passwords count too
#   SSH_AUTHENTICATION_METHODS   e.g. `publickey,password`: key AND password
#   SSH_PORT                     default 2222
#   STRATA_SSH_HOST_KEYS         directory of ssh_host_*_key files (default /etc/ssh/host_keys)
#   STRATA_GPU_METRICS=1         GPU metrics for Prometheus on STRATA_GPU_METRICS_PORT (9400)
#   JUPYTER_TOKEN                JupyterLab's token (else a random one, in the log)
#   STRATA_TLS_DIR               tls.crt + tls.key here (default /etc/strata/tls): HTTPS
#
# Arguments are passed on to `jupyter lab`. Without JupyterLab in the image,
# sshd is the main process. The container exits with the main process's status.
set -eu

log() { printf 'strata-start: %s\n' "$*" >&2; }

state=/var/lib/strata-ssh
home=${HOME:-/home/jupyter}
sshd_pid=
metrics_pid=

# Prints the sshd options for this container, or fails with a message.
ssh_setup() {
    port=${SSH_PORT:-2222}
    case $port in '' | *[!0-9]*) log "SSH_PORT=$port is not a port number; sshd not started"; return 1 ;; esac
    hash=
    if [ -n "${SSH_PASSWORD_HASH_FILE:-}" ]; then
        hash=$(head -n 1 "$SSH_PASSWORD_HASH_FILE") || { log "cannot read SSH_PASSWORD_HASH_FILE=$SSH_PASSWORD_HASH_FILE; sshd not started"; return 1; }
    elif [ -n "${SSH_PASSWORD_HASH:-}" ]; then
        hash=$SSH_PASSWORD_HASH
    fi
    mounted="$home/.ssh/authorized_keys"
    if [ -z "${SSH_AUTHORIZED_KEYS:-}" ] && [ ! -s "$mounted" ] && [ -z "$hash" ]; then
        log "SSH is off: no keys given. To log in with ssh -p 2222 jupyter@HOST, run the container with"
        log "  -p 2222:2222 -e SSH_AUTHORIZED_KEYS=\"\$(cat ~/.ssh/id_ed25519.pub)\""
        log "or mount a file at $mounted (docs/flagship.md, \"SSH\")"
        return 1
    fi
    if [ "$(id -u)" = 0 ]; then
        log "SSH is off: sshd runs as the image user, not root (drop --user 0)"
        return 1
    fi
    if [ ! -w "$state" ]; then
        log "SSH is off: $state is not writable by uid $(id -u) (with --read-only, mount a tmpfs there owned by the user)"
        return 1
    fi
    umask 077
    # Authorized keys: the variable's and the mounted file's, read now.
    {
        if [ -n "${SSH_AUTHORIZED_KEYS:-}" ]; then printf '%s\n' "$SSH_AUTHORIZED_KEYS" | tr -d '\r'; fi
        if [ -s "$mounted" ]; then cat "$mounted"; fi
    } >"$state/authorized_keys.new"
    mv -f "$state/authorized_keys.new" "$state/authorized_keys"
    nkeys=$(grep -c '^[^#[:space:]]' "$state/authorized_keys" || true)
    # Host keys: from the mounted directory (copied, so their modes suit
    # sshd), else made now. Never in the image.
    rm -f "$state"/ssh_host_*
    hostdir=${STRATA_SSH_HOST_KEYS:-/etc/ssh/host_keys}
    found=
    for k in "$hostdir"/ssh_host_*_key; do
        [ -f "$k" ] || continue
        cp "$k" "$state/" && chmod 600 "$state/${k##*/}" || { log "cannot read host key $k; sshd not started"; return 1; }
        found=1
    done
    if [ -n "$found" ]; then
        log "sshd: host keys from $hostdir"
    else
        for t in ed25519 ecdsa; do
            ssh-keygen -q -t "$t" -N '' -C '' -f "$state/ssh_host_${t}_key" </dev/null >/dev/null
        done
        log "sshd: host keys made for this container (mount a directory at $hostdir to keep them):"
    fi
    for k in "$state"/ssh_host_*_key; do
        log "  $(ssh-keygen -l -f "$k" 2>/dev/null || echo "$k")"
    done
    # Passwords: only with a hash the operator gave; `*` matches none.
    user=$(id -un)
    if [ -n "$hash" ]; then
        case $hash in
            '$'*) ;;
            *) log "SSH_PASSWORD_HASH is not a crypt(3) hash (make one with: openssl passwd -6); sshd not started"; return 1 ;;
        esac
        case $hash in *:* | *' '*) log "SSH_PASSWORD_HASH must not hold ':' or spaces; sshd not started"; return 1 ;; esac
        if ! printf '%s:%s:19000:0:99999:7:::\n' "$user" "$hash" >/etc/shadow 2>/dev/null; then
            log "cannot write /etc/shadow; sshd not started"
            return 1
        fi
        passwords=yes
    else
        if [ -w /etc/shadow ]; then printf '%s:*:19000:0:99999:7:::\n' "$user" >/etc/shadow; fi
        passwords=no
    fi
    methods=${SSH_AUTHENTICATION_METHODS:-any}
    case $methods in *[!a-z0-9,:-]*) log "SSH_AUTHENTICATION_METHODS=$methods: letters, ',' and ':' only; sshd not started"; return 1 ;; esac
    set -- -D -e -f /etc/ssh/sshd_config -p "$port" -o "PasswordAuthentication=$passwords" -o "AuthenticationMethods=$methods"
    for k in "$state"/ssh_host_*_key; do set -- "$@" -h "$k"; done
    if ! err=$(/usr/sbin/sshd -t "$@" 2>&1); then
        log "sshd refuses its configuration: $err"
        return 1
    fi
    /usr/sbin/sshd "$@" &
    sshd_pid=$!
    log "sshd: port $port, user $user, $nkeys authorized key(s), passwords $passwords, methods $methods (pid $sshd_pid)"
}

if command -v sshd >/dev/null 2>&1 || [ -x /usr/sbin/sshd ]; then
    ssh_setup || true
fi

if [ "${STRATA_GPU_METRICS:-0}" = 1 ]; then
    if command -v strata-verify >/dev/null 2>&1; then
        addr="0.0.0.0:${STRATA_GPU_METRICS_PORT:-9400}"
        strata-verify metrics --listen "$addr" &
        metrics_pid=$!
        log "GPU metrics for Prometheus: http://$addr/metrics (pid $metrics_pid)"
    else
        log "STRATA_GPU_METRICS=1, but this image has no strata-verify: no GPU metrics"
    fi
fi

if command -v jupyter >/dev/null 2>&1; then
    tls=${STRATA_TLS_DIR:-/etc/strata/tls}
    if [ -f "$tls/tls.crt" ] && [ -f "$tls/tls.key" ]; then
        set -- "--ServerApp.certfile=$tls/tls.crt" "--ServerApp.keyfile=$tls/tls.key" "$@"
        log "JupyterLab: HTTPS with $tls/tls.crt"
    elif [ -e "$tls/tls.crt" ] || [ -e "$tls/tls.key" ]; then
        log "JupyterLab: $tls needs both tls.crt and tls.key for HTTPS; serving HTTP"
    fi
    # JupyterLab reads JUPYTER_TOKEN itself, else makes a token and logs the URL with it.
    exec jupyter lab --ip=0.0.0.0 --no-browser "$@"
fi

if [ -z "$sshd_pid" ]; then
    log "nothing to run: this image has no JupyterLab, and SSH is off (see above)"
    exit 64
fi
log "no JupyterLab in this image: sshd is the main process"
stopping=
trap 'stopping=1; kill -TERM "$sshd_pid" 2>/dev/null || true' TERM INT HUP
status=0
wait "$sshd_pid" || status=$?
while [ -n "$stopping" ] && kill -0 "$sshd_pid" 2>/dev/null; do
    wait "$sshd_pid" || true
done
if [ -n "$stopping" ]; then
    log "stopped"
    exit 0
fi
log "sshd exited with status $status"
exit "$status"
