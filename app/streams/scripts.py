"""The scripts a reply log's mirror (app/streams/mirror.py) runs inside Redis: each one command,
applied at once, and safe to send again."""

from __future__ import annotations

# A flush: per event, KEYS its stream and progress key, ARGV its seq (-1: progress), whether it
# ends the reply, its type and JSON. One command, not a pipeline of several per event (each
# packed and its answer parsed in Python): the process's CPU per token event at 100 to 1,000
# streams was 41-47 us with pipelined XADDs, 17-25 us so, 9-11 us without Redis
# (benchmarks/reply_mirror.py). An event already there (a flush sent again) is skipped.
WRITE = """
local keep = ARGV[1]
for j = 1, #KEYS / 2 do
  local stream, progress = KEYS[2 * j - 1], KEYS[2 * j]
  local seq, ends = tonumber(ARGV[4 * j - 2]), ARGV[4 * j - 1] == '1'
  local kind, payload = ARGV[4 * j], ARGV[4 * j + 1]
  if seq < 0 then
    redis.call('SET', progress, kind .. ' ' .. payload, 'PX', keep)
  else
    local added = redis.pcall('XADD', stream, '0-' .. (seq + 1), 't', kind, 'd', payload)
    if type(added) == 'table' and added.err and not string.find(added.err, 'equal or smaller') then
      return redis.error_reply(added.err)
    end
    if ends or seq == 0 then redis.call('PEXPIRE', stream, keep) end
    if ends or seq == 1 then redis.call('DEL', progress) end
  end
end
return #KEYS / 2
"""

# Adds the events given (from seq ARGV[2] on) that the stream lacks, atomically: a flush that
# timed out may still reach Redis, in part or later (a hung one's, once it answers again).
CATCH_UP = """
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local have = 0
if #top > 0 then have = tonumber(string.match(top[1][1], '-(%d+)$')) end
local first = tonumber(ARGV[2])
for i = 3, #ARGV, 2 do
  local seq = first + (i - 3) / 2
  if seq + 1 > have then
    redis.call('XADD', KEYS[1], '0-' .. (seq + 1), 't', ARGV[i], 'd', ARGV[i + 1])
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
if first + (#ARGV - 2) / 2 > 1 then redis.call('DEL', KEYS[2]) end
return have
"""
