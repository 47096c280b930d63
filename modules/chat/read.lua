if redis.replicate_commands then pcall(redis.replicate_commands) end
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local dedupe = ARGV[13] ~= '0'
if dedupe then
  local prev = redis.call('GET', KEYS[4])
  if prev then
    if ARGV[11] == '1' then redis.call('SET', KEYS[4], prev, 'KEEPTTL') end
    return {5, prev}
  end
end
local cur = redis.call('GET', KEYS[1])
local floored = false
if not cur then
  if ARGV[12] == '' then return {4, ''} end
  if ARGV[12] ~= '0-0' then cur, floored = ARGV[12], true end
end
if cur then
  local cms, cseq = parse(cur)
  local ms, seq = parse(ARGV[1])
  if cms and (cms > ms or (cms == ms and cseq >= seq)) then
    if floored then
      redis.call('SET', KEYS[1], cur, 'PX', ARGV[4])
    elseif ARGV[11] == '1' then
      redis.call('SET', KEYS[1], cur, 'KEEPTTL')
    end
    return {1, cur}
  end
end
local n = tonumber(redis.call('GET', KEYS[2]) or '0')
if n >= tonumber(ARGV[2]) then
  local t = redis.call('PTTL', KEYS[2])
  if t < 0 then
    redis.call('PEXPIRE', KEYS[2], ARGV[3])
    t = tonumber(ARGV[3])
  end
  return {2, t}
end
if redis.call('INCR', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[3]) end
local t = redis.call('TIME')
local now = t[1] .. string.format('%03d', math.floor(tonumber(t[2]) / 1000))
local fields = {unpack(ARGV, 14)}
fields[#fields + 1] = ARGV[9]
fields[#fields + 1] = now
local id = redis.pcall('XADD', KEYS[3], now .. '-*', unpack(fields))
if type(id) == 'table' and id.err then
  id = redis.call('XADD', KEYS[3], '*', unpack(fields))
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4])
if dedupe then redis.call('SET', KEYS[4], id, 'PX', ARGV[13]) end
local ts = string.match(id, '^(%d+)-')
redis.call(ARGV[10], ARGV[5], ARGV[6] .. id .. ARGV[7] .. ts .. ARGV[8])
return {0, id}
