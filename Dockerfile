# syntax=docker/dockerfile:1
# firstcome: `docker run -p 8080:8080 IMAGE` serves the embedded default (SQLite in
# the /app/data volume, the in-process gate, a demo coupon on an empty database).
# The same image runs `serve [--no-worker]`, `worker` and `bench` (the workspace
# package packages/bench): the entrypoint is `firstcome`. See docs/deploy.md.

# Build: compile the TypeScript, then drop the dev dependencies so the runtime
# stage copies production modules only. Nothing native is built: SQLite is
# Node's own (node:sqlite), so the build needs no compiler and downloads nothing
# but the npm packages.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/bench/package.json packages/bench/
# The lockfile alone decides this layer, so a source change reuses it. Behind a
# proxy that re-signs TLS, pass its CA bundle as the build secret `ca` (added to
# Node's roots for this step only; nothing of it stays in the image).
RUN --mount=type=secret,id=ca,target=/run/secrets/ca \
  if [ -s /run/secrets/ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/ca; fi \
  && npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/copy-assets.mjs scripts/
COPY src src
COPY packages/bench/tsconfig.build.json packages/bench/
COPY packages/bench/src packages/bench/src
# Of the build, neither the declarations nor the build info are needed at run time.
RUN npm run build \
  && find dist packages/bench/dist \( -name '*.d.ts' -o -name '*.tsbuildinfo' \) -delete \
  && npm prune --omit=dev --ignore-scripts --no-audit --no-fund \
  && find node_modules -depth -type d -empty -delete

FROM node:24-bookworm-slim
# tini is PID 1: it passes SIGTERM on to the server (whose graceful stop then
# runs) and reaps what the server forks.
RUN apt-get update \
  && apt-get install -y --no-install-recommends tini \
  && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
COPY --from=build /app/packages/bench/dist packages/bench/dist
COPY package.json ./
COPY packages/bench/package.json packages/bench/
COPY bin bin
RUN ln -s /app/bin/firstcome.js /usr/local/bin/firstcome \
  && mkdir data && chown node:node data
USER node
# /app/data holds the embedded SQLite database (DATABASE_URL's default, relative
# to /app): mount a volume there (`-v firstcome-data:/app/data`). No VOLUME line,
# so containers that do not use it (Redis mode, the compose stack's API and
# workers) leave no anonymous volume behind.
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["tini", "--", "firstcome"]
CMD ["serve"]
