vcl 4.1;

# Varnish in front of the nginx origin, for bench/run.sh. Objects stay an hour; a miss streams to every client
# waiting for it (do_stream), so one fetch per object goes to the origin.
backend origin {
    .host = "127.0.0.1";
    .port = "@UPSTREAM_PORT@";
    .connect_timeout = 5s;
    .first_byte_timeout = 600s;
    .between_bytes_timeout = 600s;
}

sub vcl_backend_response {
    set beresp.ttl = 1h;
    set beresp.grace = 0s;
    set beresp.do_stream = true;
}

sub vcl_deliver {
    if (obj.hits > 0) {
        set resp.http.X-Cache-Status = "HIT";
    } else {
        set resp.http.X-Cache-Status = "MISS";
    }
}
