#!/usr/bin/env bash
# Prints the issue's benchmark figures as one table from `go test -bench` output (a file, or
# stdin). Used by `make bench`; each figure comes from the benchmark named in its row.
set -euo pipefail

awk '
/^Benchmark/ {
    name = $1; sub(/-[0-9]+$/, "", name); sub(/^Benchmark/, "", name)
    # After the name and the iteration count come "value unit" pairs.
    for (i = 3; i + 1 <= NF; i += 2) m[name, $(i + 1)] = $i
    seen[name] = 1
}
function get(b, unit) { return ((b, unit) in m) ? m[b, unit] : "" }
function row(figure, value, target) { printf "| %-44s | %-40s | %-14s |\n", figure, value, target }
function missing(b) { return "not run (" b ")" }
END {
    printf "| %-44s | %-40s | %-14s |\n", "figure", "measured", "target"
    printf "|%s|%s|%s|\n", "----------------------------------------------", "------------------------------------------", "----------------"
    split("redeploy rollback restart scale-1-10 scale-10-1", ops, " ")
    for (k = 1; k <= 5; k++) {
        op = ops[k]
        f = get("ZeroDowntime", op "-failed"); t = get("ZeroDowntime", op "-requests")
        row("1. failed requests during " op, (t == "" ? missing("ZeroDowntime") : sprintf("%d failed / %d", f, t)), "0 / >= 5000")
    }
    r = get("DeployOverhead", "overhead-ratio")
    row("2. deploy overhead (platform / docker+nginx)", (r == "" ? missing("DeployOverhead") : sprintf("%.2f (%.2f s / %.2f s)", r, get("DeployOverhead", "platform-s"), get("DeployOverhead", "floor-s"))), "<= 1.10")
    p = get("TaskPickup", "p50-ms")
    row("3. task pickup, 202 to first node activity", (p == "" ? missing("TaskPickup") : sprintf("p50 %.1f ms, p99 %.1f ms", p, get("TaskPickup", "p99-ms"))), "p50 <= 50 ms")
    r = get("ScaleOut", "ratio")
    row("4. scale 1->10 (platform / docker run x10)", (r == "" ? missing("ScaleOut") : sprintf("%.2f (%.2f s / %.2f s)", r, get("ScaleOut", "platform-s"), get("ScaleOut", "floor-s"))), "<= 1.2")
    q = get("ScaleOut", "ratio-seq")
    if (q != "") row("   the same, runs one after the other by hand", sprintf("%.2f (%.2f s / %.2f s)", q, get("ScaleOut", "platform-s"), get("ScaleOut", "floor-seq-s")), "<= 1.2")
    i = get("AgentMemory", "idle-MiB")
    row("5. agent resident memory", (i == "" ? missing("AgentMemory") : sprintf("idle %.1f MiB, building %.1f MiB", i, get("AgentMemory", "building-MiB"))), "idle <= 40 MB")
    e = get("BillingRun10000Apps", "entries")
    row("6. billing run over 10,000 running apps", (e == "" ? missing("BillingRun10000Apps") : sprintf("%.2f s, %d ledger entries", get("BillingRun10000Apps", "run-s"), e)), "<= 60 s, 10000")
    d = get("Density", "deploy-ratio")
    row("7. deploy of the 301st app / first on empty node", (d == "" ? missing("Density") : sprintf("%.2f (%.2f s / %.2f s)", d, get("Density", "deploy-301-s"), get("Density", "first-deploy-s"))), "<= 1.2")
    if (d != "") {
        row("   route switch, first app / at 300 apps", sprintf("%d ms / %d ms", get("Density", "switch-first-ms"), get("Density", "switch-300-ms")), "")
        row("   nginx -t, empty node / at 300 apps", sprintf("%.1f ms / %.1f ms", get("Density", "nginx-t-empty-ms"), get("Density", "nginx-t-300-ms")), "")
        row("   agent resident memory, empty / at 300 apps", sprintf("%.1f MiB / %.1f MiB", get("Density", "agent-empty-MiB"), get("Density", "agent-300-MiB")), "")
        row("   node memory per idle app (MemAvailable)", sprintf("%.1f MiB", get("Density", "node-MiB-per-app")), "")
        row("   300 organizations deployed, 8 at a time", sprintf("%.0f s", get("Density", "deploy-300-s")), "")
        split("CloneRepository BuildImage EnsureNetwork StartInstance WaitReady PublishRoute RemoveInstances", steps, " ")
        for (k = 1; k <= 7; k++) {
            f = get("Density", steps[k] "-first-ms")
            if (f != "") row("   " steps[k] ", first / 301st", sprintf("%d ms / %d ms", f, get("Density", steps[k] "-301-ms")), "")
        }
    }
    h = get("Heal", "all-3-s")
    row("8. instances removed out of band to full count", (h == "" ? missing("Heal") : sprintf("3 of 3: %.1f s, 1 of 3: %.1f s", h, get("Heal", "one-of-3-s"))), "< 30 s")
    p = get("Registry", "push-ratio")
    row("9. registry push, deploy / deploy without it", (p == "" ? missing("Registry") : sprintf("%.2f (push %d ms of %.2f s)", p, get("Registry", "push-ms"), get("Registry", "deploy-s"))), "")
    if (p != "") row("   rollback pulling the image / image on node", sprintf("%.2f (%.2f s / %.2f s)", get("Registry", "pull-ratio"), get("Registry", "rollback-pull-s"), get("Registry", "rollback-local-s")), "")
    d = get("Drain", "drain-10-s")
    row("10. drain a node of 10 running apps", (d == "" ? missing("Drain") : sprintf("%.1f s (%.1f s per app)", d, get("Drain", "per-app-s"))), "")
    g = get("GatewayPickup", "gateway-p50-ms")
    row("11. task pickup through the node gateway", (g == "" ? missing("GatewayPickup") : sprintf("p50 %.1f ms, p99 %.1f ms", g, get("GatewayPickup", "gateway-p99-ms"))), "")
    if (g != "") row("   the same, polling the frontend directly", sprintf("p50 %.1f ms, p99 %.1f ms (added at p50: %.1f ms)", get("GatewayPickup", "direct-p50-ms"), get("GatewayPickup", "direct-p99-ms"), get("GatewayPickup", "added-p50-ms")), "added <= 5 ms")
    if (("Redeploy", "ns/op") in m) row("   redeploy, API to new release served", sprintf("%.2f s", m["Redeploy", "ns/op"] / 1e9), "")
    c = get("NodeRebuild", "cold/cached")
    if (c != "") row("   Node.js build, cold / cached", sprintf("%.2f s / %.2f s (x%.2f)", get("NodeRebuild", "cold-s"), get("NodeRebuild", "cached-s"), c), "")
    d = get("DatabaseBackupRestore", "backup-MiB/s")
    row("12. PostgreSQL backup, platform / pg_dump", (d == "" ? missing("DatabaseBackupRestore") : sprintf("%.1f / %.1f MiB/s (x%.2f time)", d, get("DatabaseBackupRestore", "pg_dump-MiB/s"), get("DatabaseBackupRestore", "backup-ratio"))), "")
    if (d != "") row("    restore, platform / pg_restore", sprintf("%.1f / %.1f MiB/s (x%.2f time)", get("DatabaseBackupRestore", "restore-MiB/s"), get("DatabaseBackupRestore", "pg_restore-MiB/s"), get("DatabaseBackupRestore", "restore-ratio")), "")
}
' "${1:-/dev/stdin}"
