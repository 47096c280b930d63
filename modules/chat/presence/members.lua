local Z, N, P = KEYS[1], KEYS[3], KEYS[4]
local first = {}
for _, it in ipairs(redis.call('LRANGE', P, 0, -1)) do
  local sign, rest = string.sub(it, 1, 1), string.sub(it, 2)
  local sep = string.find(rest, '\0', 1, true)
  if sep and (sign == '+' or sign == '-') then
    local uid = string.sub(rest, 1, sep - 1)
    if not first[uid] then first[uid] = {sign, string.sub(rest, sep + 1)} end
  end
end
local seen, out = {}, {}
for _, m in ipairs(redis.call('ZRANGEBYSCORE', Z, '(' .. ARGV[1], '+inf')) do
  local sep = string.find(m, '\0', 1, true)
  if sep then
    local uid = string.sub(m, 1, sep - 1)
    if not seen[uid] and not (first[uid] and first[uid][1] == '+') then
      seen[uid] = true
      out[#out + 1] = uid
      out[#out + 1] = redis.call('HGET', N, uid) or ''
    end
  end
end
for uid, f in pairs(first) do
  if f[1] == '-' and not seen[uid] then
    seen[uid] = true
    out[#out + 1] = uid
    out[#out + 1] = f[2]
  end
end
return out
