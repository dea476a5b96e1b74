-- Wireshark / tshark dissector for the FileProxy wire protocol, version 1 (docs/PROTOCOL.md).
--
-- Install: copy this file into Wireshark's personal Lua plugins folder (Help > About > Folders > Personal Lua
-- Plugins; on Linux ~/.local/lib/wireshark/plugins/), or load it for one run:
--   tshark -X lua_script:docs/wireshark/fileproxy.lua -r capture.pcapng
-- TCP ports 5000 (proxy) and 5010 (origin) are decoded as FileProxy; for others use Decode As, or
--   tshark ... -d tcp.port==PORT,fileproxy
-- Every frame type and field of PROTOCOL.md is decoded; the raw bytes of a GET body (which follow a GET Ok head
-- outside any frame) are shown as "Body" items with their place in the body. Multipath transfers (several TCP
-- connections, or MPTCP subflows) are decoded per connection: filter on fileproxy.name to see one file's chunks.

local fp = Proto("fileproxy", "FileProxy")

local opcodes = {
    [0x01] = "GET", [0x02] = "STAT", [0x03] = "STATS", [0x04] = "PURGE", [0x05] = "AUTH", [0x06] = "LIST",
    [0x81] = "GET response", [0x82] = "STAT response", [0x83] = "STATS response", [0x84] = "PURGE response",
    [0x85] = "AUTH response", [0x86] = "LIST response",
    [0xFF] = "Error",
}
local statuses = {
    [0] = "Ok", [1] = "NotFound", [2] = "BadRequest", [3] = "Forbidden", [4] = "UpstreamUnavailable",
    [5] = "RangeNotSatisfiable", [6] = "Busy", [7] = "InternalError", [8] = "VersionMismatch",
    [9] = "UnsupportedVersion", [10] = "UpstreamIntegrityError", [11] = "NotSupported", [12] = "Unauthorized",
}
local entry_types = { [1] = "file", [2] = "directory" }
local sources = {
    [0] = "Origin", [1] = "CacheHit", [2] = "CacheMiss", [3] = "CacheCoalesced", [4] = "PassThrough", [5] = "StaleHit",
}

local f = {
    magic = ProtoField.uint16("fileproxy.magic", "Magic", base.HEX),
    version = ProtoField.uint8("fileproxy.version", "Version", base.DEC),
    opcode = ProtoField.uint8("fileproxy.opcode", "Opcode", base.HEX, opcodes),
    payload_length = ProtoField.uint32("fileproxy.payload_length", "Payload length", base.DEC),
    name = ProtoField.string("fileproxy.name", "Name", base.UNICODE),
    offset = ProtoField.uint64("fileproxy.offset", "Offset", base.DEC),
    length = ProtoField.uint64("fileproxy.length", "Length", base.DEC),
    if_version = ProtoField.string("fileproxy.if_version", "If-version", base.UNICODE),
    flags = ProtoField.uint8("fileproxy.flags", "Flags", base.HEX),
    forwarded = ProtoField.bool("fileproxy.forwarded", "Forwarded (hop mark)", 8, nil, 0x01),
    status = ProtoField.uint8("fileproxy.status", "Status", base.DEC, statuses),
    message = ProtoField.string("fileproxy.message", "Message", base.UNICODE),
    size = ProtoField.uint64("fileproxy.size", "File size", base.DEC),
    version_tag = ProtoField.string("fileproxy.version_tag", "Version tag", base.UNICODE),
    digest = ProtoField.bytes("fileproxy.digest", "BLAKE3 digest"),
    body_offset = ProtoField.uint64("fileproxy.body_offset", "Body offset", base.DEC),
    body_length = ProtoField.uint64("fileproxy.body_length", "Body length", base.DEC),
    source = ProtoField.uint8("fileproxy.source", "Source", base.DEC, sources),
    counter_count = ProtoField.uint16("fileproxy.counter_count", "Counters", base.DEC),
    counter_name = ProtoField.string("fileproxy.counter_name", "Counter", base.UNICODE),
    counter_value = ProtoField.int64("fileproxy.counter_value", "Value", base.DEC),
    token_length = ProtoField.uint16("fileproxy.token_length", "Token length (the token is not shown)", base.DEC),
    directory = ProtoField.string("fileproxy.directory", "Directory", base.UNICODE),
    cursor = ProtoField.string("fileproxy.cursor", "Cursor", base.UNICODE),
    limit = ProtoField.uint16("fileproxy.limit", "Limit", base.DEC),
    entry_count = ProtoField.uint16("fileproxy.entry_count", "Entries", base.DEC),
    entry_type = ProtoField.uint8("fileproxy.entry_type", "Type", base.DEC, entry_types),
    entry_name = ProtoField.string("fileproxy.entry_name", "Entry", base.UNICODE),
    entry_size = ProtoField.uint64("fileproxy.entry_size", "Size", base.DEC),
    entry_version = ProtoField.string("fileproxy.entry_version", "Version tag", base.UNICODE),
    next_cursor = ProtoField.string("fileproxy.next_cursor", "Next cursor", base.UNICODE),
    body = ProtoField.bytes("fileproxy.body", "Body bytes"),
    body_position = ProtoField.uint64("fileproxy.body_position", "Body bytes so far", base.DEC),
}
fp.fields = f

local e_malformed = ProtoExpert.new("fileproxy.malformed", "Malformed FileProxy frame", expert.group.MALFORMED, expert.severity.ERROR)
fp.experts = { e_malformed }

local TO_END = UInt64(0xFFFFFFFF, 0xFFFFFFFF)

-- Per direction of each connection: how many GET body bytes are still to come, and where in the body we are. A
-- body follows a GET Ok head outside any frame, so this state is what tells body bytes from the next frame.
-- Computed on the first pass, remembered per (packet, tvb length) for the passes after it.
local running = {}
local at_start = {}

function fp.init()
    running = {}
    at_start = {}
end

local function str16(tvb, tree, field, at)
    local n = tvb(at, 2):uint()
    tree:add(field, tvb(at, 2 + n), n > 0 and tvb(at + 2, n):string(ENC_UTF_8) or "")
    return (n > 0 and tvb(at + 2, n):string(ENC_UTF_8) or ""), at + 2 + n
end

-- The optional flags byte that ends a GET or STAT (docs/PROTOCOL.md, "Request flags").
local function request_flags(tvb, tree, info, at, stop)
    if at < stop then
        local flags = tvb(at, 1):uint()
        local item = tree:add(f.flags, tvb(at, 1))
        item:add(f.forwarded, tvb(at, 1))
        if flags % 2 == 1 then
            info = info .. " (forwarded)"
        end
        at = at + 1
    end
    return info, at
end

local function dissect_payload(tvb, tree, opcode, at, stop, pinfo)
    local info = opcodes[opcode] or string.format("opcode 0x%02x", opcode)
    local body = nil
    if opcode == 0x01 then
        local name; name, at = str16(tvb, tree, f.name, at)
        local off = tvb(at, 8):uint64(); tree:add(f.offset, tvb(at, 8)); at = at + 8
        local len = tvb(at, 8):uint64(); tree:add(f.length, tvb(at, 8)); at = at + 8
        local ifv; ifv, at = str16(tvb, tree, f.if_version, at)
        info = string.format("GET %s [%s+%s]%s", name, tostring(off), len == TO_END and "end" or tostring(len),
            ifv ~= "" and (" if " .. ifv) or "")
        info, at = request_flags(tvb, tree, info, at, stop)
    elseif opcode == 0x02 or opcode == 0x04 then
        local name; name, at = str16(tvb, tree, f.name, at)
        info = string.format("%s %s", opcodes[opcode], name)
        if opcode == 0x02 then
            info, at = request_flags(tvb, tree, info, at, stop)
        end
    elseif opcode == 0x03 then
        info = "STATS"
    elseif opcode == 0x05 then
        local n = tvb(at, 2):uint(); tree:add(f.token_length, tvb(at, 2)); at = at + 2 + n
        info = string.format("AUTH (token of %d bytes)", n)
    elseif opcode == 0x06 then
        local dir; dir, at = str16(tvb, tree, f.directory, at)
        local cursor; cursor, at = str16(tvb, tree, f.cursor, at)
        local limit = tvb(at, 2):uint(); tree:add(f.limit, tvb(at, 2)); at = at + 2
        info = string.format("LIST %s%s%s", dir == "" and "." or dir, cursor ~= "" and (" after " .. cursor) or "",
            limit ~= 0 and string.format(" (at most %d)", limit) or "")
    else
        local status = tvb(at, 1):uint(); tree:add(f.status, tvb(at, 1)); at = at + 1
        local message; message, at = str16(tvb, tree, f.message, at)
        info = string.format("%s %s", opcodes[opcode] or "response", statuses[status] or tostring(status))
        if status ~= 0 then
            info = info .. ": " .. message
        elseif opcode == 0x81 or opcode == 0x82 then
            local size = tvb(at, 8):uint64(); tree:add(f.size, tvb(at, 8)); at = at + 8
            local tag; tag, at = str16(tvb, tree, f.version_tag, at)
            tree:add(f.digest, tvb(at, 32)); at = at + 32
            if opcode == 0x81 then
                local off = tvb(at, 8):uint64(); tree:add(f.body_offset, tvb(at, 8)); at = at + 8
                body = tvb(at, 8):uint64(); tree:add(f.body_length, tvb(at, 8)); at = at + 8
                info = info .. string.format(" %s+%s of %s", tostring(off), tostring(body), tostring(size))
            end
            local source = tvb(at, 1):uint(); tree:add(f.source, tvb(at, 1)); at = at + 1
            info = info .. " (" .. (sources[source] or tostring(source)) .. ")"
        elseif opcode == 0x83 then
            local count = tvb(at, 2):uint(); tree:add(f.counter_count, tvb(at, 2)); at = at + 2
            for _ = 1, count do
                local item = tree:add(fp, tvb(at, 2 + tvb(at, 2):uint() + 8), "Counter")
                local name; name, at = str16(tvb, item, f.counter_name, at)
                item:add(f.counter_value, tvb(at, 8)); at = at + 8
                item:set_text(string.format("%s = %s", name, tostring(tvb(at - 8, 8):int64())))
            end
            info = info .. string.format(" (%d counters)", count)
        elseif opcode == 0x86 then
            local count = tvb(at, 2):uint(); tree:add(f.entry_count, tvb(at, 2)); at = at + 2
            for _ = 1, count do
                local start = at
                local item = tree:add(fp, tvb(at, 1), "Entry")
                local kind = tvb(at, 1):uint(); item:add(f.entry_type, tvb(at, 1)); at = at + 1
                local name; name, at = str16(tvb, item, f.entry_name, at)
                local size = tvb(at, 8):uint64(); item:add(f.entry_size, tvb(at, 8)); at = at + 8
                local _; _, at = str16(tvb, item, f.entry_version, at)
                item:set_len(at - start)
                item:set_text(string.format("%s %s (%s bytes)", entry_types[kind] or tostring(kind), name, tostring(size)))
            end
            local next; next, at = str16(tvb, tree, f.next_cursor, at)
            info = info .. string.format(" (%d entries%s)", count, next ~= "" and (", more after " .. next) or "")
        end
    end
    if at ~= stop then
        tree:add_proto_expert_info(e_malformed, string.format("payload has %d bytes the layout does not account for", stop - at))
    end
    return info, body
end

function fp.dissector(tvb, pinfo, tree)
    local total = tvb:len()
    local key = tostring(pinfo.src) .. ":" .. pinfo.src_port .. ">" .. tostring(pinfo.dst) .. ":" .. pinfo.dst_port
    local here = pinfo.number .. "/" .. total
    local state
    if not pinfo.visited then
        local now = running[key] or { remaining = UInt64(0), position = UInt64(0) }
        state = { remaining = now.remaining, position = now.position }
        at_start[here] = { remaining = now.remaining, position = now.position }
    else
        local saved = at_start[here] or { remaining = UInt64(0), position = UInt64(0) }
        state = { remaining = saved.remaining, position = saved.position }
    end
    pinfo.cols.protocol = "FileProxy"
    local infos = {}
    local offset = 0
    while offset < total do
        if state.remaining > 0 then
            local available = total - offset
            local n = state.remaining < UInt64(available) and state.remaining:tonumber() or available
            local item = tree:add(fp, tvb(offset, n), string.format("FileProxy body: %d bytes", n))
            item:add(f.body, tvb(offset, n))
            state.position = state.position + n
            state.remaining = state.remaining - n
            item:add(f.body_position, state.position):set_generated()
            infos[#infos + 1] = string.format("Body %d bytes", n)
            offset = offset + n
        else
            if total - offset < 8 then
                pinfo.desegment_offset = offset
                pinfo.desegment_len = DESEGMENT_ONE_MORE_SEGMENT
                break
            end
            local magic = tvb(offset, 2):uint()
            local payload = tvb(offset + 4, 4):uint()
            if magic ~= 0x4650 then
                local item = tree:add(fp, tvb(offset), "FileProxy: not a frame (wrong magic)")
                item:add_proto_expert_info(e_malformed, "wrong magic: the stream's place is lost")
                offset = total
                break
            end
            if total - offset < 8 + payload then
                pinfo.desegment_offset = offset
                pinfo.desegment_len = 8 + payload - (total - offset)
                break
            end
            local frame = tree:add(fp, tvb(offset, 8 + payload))
            frame:add(f.magic, tvb(offset, 2))
            frame:add(f.version, tvb(offset + 2, 1))
            local opcode = tvb(offset + 3, 1):uint()
            frame:add(f.opcode, tvb(offset + 3, 1))
            frame:add(f.payload_length, tvb(offset + 4, 4))
            local ok, info, body = pcall(dissect_payload, tvb, frame, opcode, offset + 8, offset + 8 + payload, pinfo)
            if not ok then
                frame:add_proto_expert_info(e_malformed, "payload shorter than its layout")
                info = (opcodes[opcode] or "frame") .. " [malformed]"
            end
            frame:set_text("FileProxy " .. info)
            infos[#infos + 1] = info
            if body ~= nil and body > 0 then
                state.remaining = body
                state.position = UInt64(0)
            end
            offset = offset + 8 + payload
        end
    end
    if not pinfo.visited then
        running[key] = { remaining = state.remaining, position = state.position }
    end
    if #infos > 0 then
        pinfo.cols.info = table.concat(infos, "; ")
    end
    return offset
end

local ports = DissectorTable.get("tcp.port")
ports:add(5000, fp)
ports:add(5010, fp)
