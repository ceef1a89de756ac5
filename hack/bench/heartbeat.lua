-- wrk script: each request is a heartbeat from one of many enrolled devices, with a report id
-- no other request uses, so every acknowledged heartbeat is a new row.
-- thread_tag is a global on purpose: setup() sets it in each thread's own state.
local tokens = {}
local counter = 0

function setup(thread)
  thread:set("thread_tag", tostring(math.random(1, 2^30)))
end

function init(args)
  for line in io.lines(os.getenv("FLOTILLA_TOKENS")) do
    tokens[#tokens + 1] = line
  end
end

function request()
  counter = counter + 1
  local token = tokens[(counter % #tokens) + 1]
  local body = '{"reportID":"' .. thread_tag .. '-' .. counter .. '","cpuPercent":12.5,'
    .. '"memory":{"usedBytes":104857600,"totalBytes":1073741824},'
    .. '"disks":[{"mount":"/","usedBytes":1000000,"totalBytes":8000000}],'
    .. '"load":[0.1,0.2,0.3],"uptimeSeconds":3600,'
    .. '"apps":{"thermostat":{"version":"2.4.1"}},"agentVersion":"0.1.0"}'
  return wrk.format("POST", "/agent/v1/heartbeat",
    {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, body)
end
