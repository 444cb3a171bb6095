#!/bin/sh
# The per-unit figures of docs/scaling.md, each on loopback and through the
# delaying proxy (1 ms and 0.5 ms each way), with the exact commands:
#   1. issue.lua decisions per Redis CPU-second by batch size   (bench gate)
#   2. requests/s per API process, seed and win paths, with the
#      bare-node baseline of the same run                        (bench --baseline)
#   3. rows/s per worker into PostgreSQL and MySQL/MariaDB       (bench drain)
# then a compact table of all of them, with the delay the proxy actually
# applied (its chunks' mean time in it: a loaded machine makes it longer). Run it on a quiet machine, after
# `npm run build`, from the repository's root:
#   sh scripts/scaling-figures.sh
# It needs Redis, PostgreSQL and MySQL/MariaDB; it (re)creates a throw-away
# database on each (DB_NAME) and uses Redis keys under REDIS_KEY_PREFIX only.
# The defaults take about 10 minutes; every knob below is an environment
# variable (short values only to check that the script works). TABLE_ONLY=1
# OUT=<dir> prints the table of an earlier run again.
set -u

REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379/0}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432}
MYSQL_URL=${MYSQL_URL:-mysql://root@127.0.0.1:3306}
DB_NAME=${DB_NAME:-fc_scaling_figures}
REDIS_KEY_PREFIX=${REDIS_KEY_PREFIX:-fcscaling:}
DELAYS=${DELAYS:-0 1 0.5}           # one-way delays, ms; 0 = loopback
GATE_SECONDS=${GATE_SECONDS:-2}     # per batch size and path (4 sizes × 2 paths)
DURATION=${DURATION:-10}            # seed and win runs, each (and its baseline)
WARMUP=${WARMUP:-3}
CONNECTIONS=${CONNECTIONS:-200}
WINS=${WINS:-200000}                # rows per drain run
OUT=${OUT:-scaling-figures-$(date -u +%Y%m%dT%H%M%SZ)}
FIRSTCOME=${FIRSTCOME:-node bin/firstcome.js}

if [ ! -d dist ]; then
  echo "dist/ is missing: run \`npm run build\` first" >&2
  exit 2
fi
mkdir -p "$OUT"
export LOG_LEVEL=${LOG_LEVEL:-warn} REDIS_KEY_PREFIX
failed=0

# (Re)creates DB_NAME on the server of a URL, with the drivers firstcome uses.
recreate_db() {
  node --input-type=module -e "
    const [url, name] = process.argv.slice(1)
    if (url.startsWith('mysql:')) {
      const { createConnection } = await import('mysql2/promise')
      const c = await createConnection(url)
      await c.query('DROP DATABASE IF EXISTS \`' + name + '\`')
      await c.query('CREATE DATABASE \`' + name + '\`')
      await c.end()
    } else {
      const { default: pg } = await import('pg')
      const c = new pg.Client({ connectionString: url + '/postgres' })
      await c.connect()
      await c.query('DROP DATABASE IF EXISTS \"' + name + '\" WITH (FORCE)')
      await c.query('CREATE DATABASE \"' + name + '\"')
      await c.end()
    }
  " "$1" "$2"
}

# run NAME ENV... -- ARGS...: one firstcome command, its line in commands.txt,
# its output in NAME.log and its figures in NAME.json.
run() {
  name=$1
  shift
  envs=""
  while [ "$1" != "--" ]; do
    envs="$envs $1"
    shift
  done
  shift
  line="$envs $FIRSTCOME $* --json $OUT/$name.json"
  echo "$name:$line" >>"$OUT/commands.txt"
  printf '%-22s %s\n' "$name" "$line"
  # shellcheck disable=SC2086
  if ! env $envs $FIRSTCOME "$@" --json "$OUT/$name.json" >"$OUT/$name.log" 2>&1; then
    echo "  failed (exit $?): see $OUT/$name.log" >&2
    failed=1
  fi
}

delay_flag() {
  if [ "$1" = 0 ]; then echo ""; else echo "--delay-ms $1"; fi
}

start=$(date +%s)
if [ -z "${TABLE_ONLY:-}" ]; then
: >"$OUT/commands.txt"

# 1. The gate: a redis-server of its own, so nothing else shares its CPU.
for d in $DELAYS; do
  # shellcheck disable=SC2046
  run "gate-$d" -- bench gate --seconds "$GATE_SECONDS" $(delay_flag "$d")
done

# 2. One API process (serve, its stream worker in-process) on PostgreSQL.
recreate_db "$PG_URL" "$DB_NAME" || exit 1
for scenario in seed win; do
  for d in $DELAYS; do
    # shellcheck disable=SC2046
    run "api-$scenario-$d" "REDIS_URL=$REDIS_URL" "DATABASE_URL=$PG_URL/$DB_NAME" -- \
      bench --scenario "$scenario" -c "$CONNECTIONS" -d "$DURATION" --warmup "$WARMUP" \
      --baseline --no-progress $(delay_flag "$d")
  done
done

# 3. One worker process draining WINS wins, on a fresh database each time.
for db in pg mysql; do
  if [ "$db" = pg ]; then url=$PG_URL; else url=$MYSQL_URL; fi
  for d in $DELAYS; do
    recreate_db "$url" "$DB_NAME" || exit 1
    # shellcheck disable=SC2046
    run "drain-$db-$d" "REDIS_URL=$REDIS_URL" "DATABASE_URL=$url/$DB_NAME" -- \
      bench drain --wins "$WINS" --workers 1 $(delay_flag "$d")
  done
done

fi

echo
echo "took $(($(date +%s) - start)) s; the outputs are in $OUT/"
echo
node --input-type=module -e "
  import { existsSync, readFileSync } from 'node:fs'
  const [out, delays] = process.argv.slice(1)
  const nets = delays.split(/\s+/).filter(Boolean)
  const netName = (d) => (d === '0' ? 'loopback' : d + ' ms')
  const read = (name) => {
    const f = out + '/' + name + '.json'
    return existsSync(f) ? JSON.parse(readFileSync(f, 'utf8')) : null
  }
  // The bench prints the proxy's CPU over the load beside the server's.
  const logged = (name, re) => {
    const f = out + '/' + name + '.log'
    return (existsSync(f) && re.exec(readFileSync(f, 'utf8'))?.[1]) || null
  }
  const proxyShare = (name) => {
    const share = logged(name, /delay proxy CPU over the load: \\d+ ms \\(([\\d.]+) %/)
    return share ? share + ' %' : '-'
  }
  // The delay the proxy actually applied: its chunks' mean time in it.
  const inProxy = (name) => logged(name, /delay proxy: mean time in it ([\\d.]+) ms/) ?? '-'
  const ms = (x) => (typeof x === 'number' ? x.toFixed(2) : '-')
  const n = (x, digits = 0) =>
    x === null || x === undefined || Number.isNaN(x) ? '-' : Number(x).toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
  const table = (head, rows) => {
    const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)))
    const line = (r) => '| ' + r.map((c, i) => (i === 0 ? String(c).padEnd(w[i]) : String(c).padStart(w[i]))).join(' | ') + ' |'
    console.log(line(head))
    console.log('| ' + w.map((x, i) => (i === 0 ? '-'.repeat(x) : '-'.repeat(x - 1) + ':')).join(' | ') + ' |')
    for (const r of rows) console.log(line(r))
    console.log()
  }

  console.log('Redis (bench gate): decisions per Redis CPU-second, wins / refusals')
  const gates = nets.map((d) => read('gate-' + d))
  const batches = [...new Set(gates.flatMap((g) => g?.runs.map((r) => r.batch) ?? []))].sort((a, b) => a - b)
  console.log('mean time in the proxy, ms: ' + nets.filter((d) => d !== '0').map((d) => netName(d) + ' ' + ms(read('gate-' + d)?.proxyMeanDelayMs)).join(', '))
  table(
    ['batch', ...nets.map(netName)],
    batches.map((b) => [
      b,
      ...gates.map((g) => {
        const of = (path) => g?.runs.find((r) => r.batch === b && r.path === path)?.decisionsPerRedisCpuSecond
        return n(of('win')) + ' / ' + n(of('refusal'))
      }),
    ]),
  )

  console.log('API process (bench --baseline): one serve process, its worker in-process, PostgreSQL')
  const apiRows = []
  for (const s of ['seed', 'win'])
    for (const d of nets) {
      const r = read('api-' + s + '-' + d)
      const fc = r?.runs.firstcome
      const us = fc?.serverCpu?.perRequestMicros
      apiRows.push([
        s + ', ' + netName(d),
        n(fc?.throughput),
        n(us, 1),
        us ? n(1e6 / us) : '-',
        n(r?.runs.baseline?.throughput),
        n(r?.ratios?.throughput, 2),
        d === '0' ? '-' : proxyShare('api-' + s + '-' + d),
        d === '0' ? '-' : inProxy('api-' + s + '-' + d),
        r ? (r.invariantsPass ? 'yes' : 'NO') : '-',
      ])
    }
  table(['path, network', 'req/s', 'server CPU µs/req', 'req/s per core', 'baseline req/s', 'ratio', 'proxy CPU ÷ server', 'in proxy, ms', 'invariants'], apiRows)

  console.log('Worker (bench drain): one worker process, rows per second')
  const drainRows = []
  for (const db of ['pg', 'mysql'])
    for (const d of nets) {
      const r = read('drain-' + db + '-' + d)
      drainRows.push([
        (db === 'pg' ? 'PostgreSQL' : 'MySQL') + ', ' + netName(d),
        n(r?.steadyRowsPerSecond),
        n(r?.rowsPerSecond),
        n(r?.grantPerSecond),
        r ? n(r.steadyRowsPerSecond / r.grantPerSecond, 2) : '-',
        n(r?.proxyCpuMs),
        ms(r?.proxyMeanDelayMs),
        r ? (r.pass ? 'yes' : 'NO') : '-',
      ])
    }
  table(['database, network', 'rows/s (after start-up)', 'rows/s (overall)', 'grant/s', 'rows ÷ grant', 'proxy CPU ms', 'in proxy, ms', 'checks'], drainRows)
  console.log('Commands: ' + out + '/commands.txt')
" "$OUT" "$DELAYS"
exit $failed
