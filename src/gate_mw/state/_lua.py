"""The Lua scripts of the Redis store: each is one atomic read-modify-write, loaded once
(SCRIPT LOAD) and called by SHA. Each touches only the keys it is given, so in a Cluster
the keys of one call must share a hash tag (the limits give theirs one per subject)."""

from __future__ import annotations

__all__ = ["ADD", "COMPARE_AND_SET", "OBSERVE", "RESERVE", "WRITE"]

#: KEYS: n counters, then keys to read. ARGV: now, n, then per counter: limit, amount,
#: period, ttl. Mirrors `gate_mw.state._memory.take`. Returns {index of the first refusal
#: or 0, {used...}, {values read...}}.
RESERVE = """
local now = tonumber(ARGV[1])
local n = tonumber(ARGV[2])
local used, news, reads = {}, {}, {}
local refused = 0
for i = 1, n do
  local b = 2 + (i - 1) * 4
  local limit, amount, period = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
  local cur = tonumber(redis.call('GET', KEYS[i]) or '0') or 0
  local fits, use, new
  if period > 0 then
    local base = math.max(cur, now)
    new = base + amount * period / limit
    fits = (new - now <= period * (1 + 1e-9) + 1e-6) and (amount > 0 or base - now < period)
    if fits then use = (new - now) * limit / period else use = (base - now) * limit / period end
  else
    new = cur + amount
    fits = (new <= limit * (1 + 1e-9)) and (amount > 0 or cur < limit)
    if fits then use = new else use = cur end
  end
  used[i] = string.format('%.17g', use)
  news[i] = new
  if (not fits) and refused == 0 then refused = i end
end
if refused == 0 then
  for i = 1, n do
    local b = 2 + (i - 1) * 4
    local ttl = tonumber(ARGV[b + 4])
    if tonumber(ARGV[b + 3]) > 0 then ttl = tonumber(ARGV[b + 3]) end
    redis.call('SET', KEYS[i], string.format('%.17g', news[i]), 'PX', math.max(1, math.ceil(ttl * 1000)))
  end
end
for i = n + 1, #KEYS do
  reads[i - n] = redis.call('GET', KEYS[i])
end
return {refused, used, reads}
"""

#: KEYS[1]: a counter. ARGV: delta, ttl in ms, "1" to refresh the ttl on every add
#: (otherwise it is set when the counter is created). Returns the new value.
ADD = """
local value = redis.call('INCRBYFLOAT', KEYS[1], ARGV[1])
if ARGV[3] == '1' or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return value
"""

#: KEYS[1]. ARGV: expected JSON ('' for absent), new JSON, ttl in ms. Returns 1 if stored.
COMPARE_AND_SET = """
local current = redis.call('GET', KEYS[1])
if (current == false and ARGV[1] == '') or current == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""

#: KEYS: n counters, then keys to store. ARGV: n, then per counter: delta, ttl in ms,
#: "1" to refresh the ttl; then per stored key: value, ttl in ms. `ADD` and SET, in one call.
WRITE = """
local n = tonumber(ARGV[1])
for i = 1, n do
  local b = 1 + (i - 1) * 3
  redis.call('INCRBYFLOAT', KEYS[i], ARGV[b + 1])
  if ARGV[b + 3] == '1' or redis.call('PTTL', KEYS[i]) < 0 then
    redis.call('PEXPIRE', KEYS[i], ARGV[b + 2])
  end
end
local base = 1 + n * 3
for i = n + 1, #KEYS do
  local b = base + (i - n - 1) * 2
  redis.call('SET', KEYS[i], ARGV[b + 1], 'PX', ARGV[b + 2])
end
return 1
"""

#: KEYS[1]: a figure [mean, variance, samples, updated] (JSON). ARGV: now, ttl in ms, then
#: per sample: seconds, alpha, half-life. Mirrors `gate_mw.state._protocol.ewma`.
OBSERVE = """
local now = tonumber(ARGV[1])
local raw = redis.call('GET', KEYS[1])
local f = nil
if raw then f = cjson.decode(raw) end
for i = 3, #ARGV, 3 do
  local x, alpha, half = tonumber(ARGV[i]), tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  if f == nil then
    f = {x, 0, 1, now}
  else
    local keep = (1 - alpha) * 0.5 ^ (math.max(0, now - f[4]) / half)
    local delta = x - f[1]
    f = {f[1] + (1 - keep) * delta, keep * (f[2] + (1 - keep) * delta * delta), f[3] + 1, now}
  end
end
redis.call('SET', KEYS[1], string.format('[%.17g,%.17g,%d,%.17g]', f[1], f[2], f[3], f[4]), 'PX', ARGV[2])
return 1
"""
