# Stand-in for the official nginx:*-bookworm image (test scaffolding only).
# Contract kept: includes /etc/nginx/conf.d/*.conf, user `nginx` (uid 101), curl present,
# the njs module at /etc/nginx/modules/ngx_http_js_module.so, SIGQUIT graceful stop,
# `nginx -g 'daemon off;'`.
ARG BASE
FROM ${BASE}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx-light libnginx-mod-http-js curl >/dev/null \
 && ln -s /usr/lib/nginx/modules /etc/nginx/modules \
 && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled /etc/nginx/sites-available \
 && groupadd --system --gid 101 nginx && useradd --system --uid 101 --gid nginx --no-create-home --shell /bin/false nginx \
 && mkdir -p /var/cache/nginx /etc/nginx/conf.d && ln -sf /dev/stdout /var/log/nginx/access.log && ln -sf /dev/stderr /var/log/nginx/error.log
COPY nginx.conf /etc/nginx/nginx.conf
COPY nginx-default.conf /etc/nginx/conf.d/default.conf
EXPOSE 80
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
