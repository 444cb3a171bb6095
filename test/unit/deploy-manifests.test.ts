/**
 * deploy/kubernetes renders with kustomize, every object is valid against the
 * Kubernetes schemas (kubernetes-models), and the manifests — and the compose
 * file — speak the server's language: env names config.ts reads and accepts,
 * the port it listens on, probe paths it answers, commands it has.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { after, before, describe, it } from 'node:test'
import { promisify } from 'node:util'
import { Deployment } from 'kubernetes-models/apps/v1'
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2'
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1'
import { ConfigMap, Namespace, Secret, Service } from 'kubernetes-models/v1'
import { parse, parseAllDocuments } from 'yaml'
import { loadConfig } from '../../src/config.js'
import { startApp, type TestApp } from '../helpers/app.js'
import { IN_CI } from '../helpers/services.js'

const ROOT = new URL('../../', import.meta.url).pathname
const run = promisify(execFile)

// biome-ignore lint/suspicious/noExplicitAny: manifests are untyped YAML until validated
type Obj = Record<string, any>

const MODELS: Record<string, new (data: Obj) => { validate(): void }> = {
  'v1/Namespace': Namespace,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/Service': Service,
  'apps/v1/Deployment': Deployment,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
} as never

/** Every variable src/config.ts reads (its str/int/bool/proxyHops helpers name them). */
function configNames(): Set<string> {
  const source = readFileSync(`${ROOT}src/config.ts`, 'utf8')
  return new Set(
    [...source.matchAll(/\b(?:str|int|bool|proxyHops)\(env, '([A-Z0-9_]+)'/g)].map(
      (m) => m[1] as string,
    ),
  )
}

const kubectl = await run('kubectl', ['version', '--client']).then(
  () => true,
  () => false,
)
const skip = kubectl || IN_CI ? false : 'kubectl is not installed (in CI this fails)'

describe('deploy/kubernetes', { skip }, () => {
  let objects: Obj[] = []
  let app: TestApp
  const byKind = (kind: string, name: string) => {
    const found = objects.find((o) => o.kind === kind && o.metadata?.name === name)
    assert.ok(found, `${kind} ${name} is rendered`)
    return found
  }

  before(async () => {
    const { stdout } = await run('kubectl', ['kustomize', `${ROOT}deploy/kubernetes`])
    objects = parseAllDocuments(stdout).map((d) => d.toJS() as Obj)
    app = await startApp()
  })
  after(() => app?.app.close())

  it('renders objects that are valid against the Kubernetes schemas', () => {
    assert.ok(objects.length >= 8)
    for (const o of objects) {
      const Model = MODELS[`${o.apiVersion}/${o.kind}`]
      assert.ok(Model, `a model for ${o.apiVersion} ${o.kind}`)
      assert.doesNotThrow(() => new Model(o).validate(), `${o.kind} ${o.metadata?.name}`)
      assert.equal(o.metadata.namespace ?? 'firstcome', 'firstcome')
    }
  })

  it('the schema check catches a broken manifest', () => {
    const api = structuredClone(byKind('Deployment', 'firstcome-api'))
    api.spec.template.spec.containers[0].ports[0].containerPort = 'eighty'
    assert.throws(() => new Deployment(api).validate())
  })

  it('ConfigMap and Secret hold only variables config.ts reads, with values it accepts', () => {
    const names = configNames()
    assert.ok(names.has('DATABASE_URL') && names.has('REDIS_URL'), 'the parse found the names')
    const config = byKind('ConfigMap', 'firstcome-config').data as Record<string, string>
    const secret = byKind('Secret', 'firstcome-secrets').stringData as Record<string, string>
    for (const name of [...Object.keys(config), ...Object.keys(secret)]) {
      assert.ok(names.has(name), `${name} is a variable config.ts reads`)
    }
    assert.deepEqual(Object.keys(secret).sort(), ['ADMIN_TOKEN', 'DATABASE_URL', 'SERVICE_TOKEN'])
    const loaded = loadConfig({ ...config, ...secret })
    assert.ok(loaded.redis, 'Redis mode')
    assert.equal(loaded.adminTokenGenerated, false)
    assert.ok(loaded.serviceToken, 'a service token for the shop backends')
    assert.equal(loaded.dialect, 'postgres')

    // The commented Redis Cluster line is a valid setting as well.
    const raw = readFileSync(`${ROOT}deploy/kubernetes/configmap.yaml`, 'utf8')
    const cluster = /#\s*REDIS_CLUSTER_NODES:\s*(\S+)/.exec(raw)?.[1]
    assert.ok(cluster)
    assert.ok(
      loadConfig({ ...config, ...secret, REDIS_CLUSTER_NODES: cluster }).redis?.clusterNodes,
    )
  })

  it('ports and probes match what the server listens on and answers', async () => {
    const config = byKind('ConfigMap', 'firstcome-config').data as Record<string, string>
    const deployment = byKind('Deployment', 'firstcome-api')
    const pod = deployment.spec.template.spec
    const [container] = pod.containers
    assert.deepEqual(container.args, ['serve', '--no-worker'])
    // The workers pump the events; the API pods never take the lease.
    const env = Object.fromEntries(container.env.map((e: Obj) => [e.name, e.value]))
    assert.equal(loadConfig({ ...config, ...env }).events.pump, false)
    assert.equal(loadConfig(config).events.pump, true, 'the workers (the ConfigMap alone) pump')
    const http = container.ports.find((p: Obj) => p.name === 'http')
    assert.equal(http.containerPort, loadConfig(config).port)
    for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
      const get = container[probe].httpGet
      assert.equal(get.port, 'http', `${probe} uses the named port`)
      const res = await app.app.inject({ method: 'GET', url: get.path })
      assert.equal(res.statusCode, 200, `${probe} ${get.path} answers 200 on a ready server`)
    }
    assert.equal(container.readinessProbe.httpGet.path, '/readyz')
    assert.equal(container.livenessProbe.httpGet.path, '/healthz')

    const service = byKind('Service', 'firstcome-api')
    assert.equal(service.spec.ports[0].targetPort, 'http')
    for (const [k, v] of Object.entries(service.spec.selector)) {
      assert.equal(deployment.spec.template.metadata.labels[k], v, `Service selects ${k}`)
    }
    const pdb = byKind('PodDisruptionBudget', 'firstcome-api')
    assert.deepEqual(pdb.spec.selector.matchLabels, deployment.spec.selector.matchLabels)
    const hpa = byKind('HorizontalPodAutoscaler', 'firstcome-api')
    assert.equal(hpa.spec.scaleTargetRef.name, deployment.metadata.name)
    assert.ok(container.resources.requests.cpu, 'the HPA needs a CPU request')
  })

  it('gives the graceful stop its time', () => {
    const pod = byKind('Deployment', 'firstcome-api').spec.template.spec
    const preStop = Number(pod.containers[0].lifecycle.preStop.exec.command[1])
    assert.ok(preStop >= 1, 'a preStop pause while endpoints are removed')
    // After the pause: connections still open SHUTDOWN_GRACE_MS after SIGTERM are
    // closed; an API primary allows its processes that plus 20 s (src/cluster.ts).
    const config = byKind('ConfigMap', 'firstcome-config').data as Record<string, string>
    const graceS = loadConfig(config).http.shutdownGraceMs / 1000
    assert.ok(pod.terminationGracePeriodSeconds > preStop + graceS + 20)
    const worker = byKind('Deployment', 'firstcome-worker').spec.template.spec
    assert.deepEqual(worker.containers[0].args, ['worker'])
    assert.ok(worker.terminationGracePeriodSeconds >= 10)
  })
})

describe('deploy/compose.yaml', () => {
  const compose = parse(readFileSync(`${ROOT}deploy/compose.yaml`, 'utf8'), { merge: true }) as Obj

  it("gives firstcome's containers only variables config.ts reads", () => {
    const names = configNames()
    for (const service of ['api1', 'api2', 'worker1', 'worker2']) {
      const env = compose.services[service].environment as Record<string, string>
      for (const name of Object.keys(env)) assert.ok(names.has(name), `${service}: ${name}`)
      assert.ok(env.ADMIN_TOKEN?.startsWith('${ADMIN_TOKEN'), 'the admin token comes from .env')
    }
    assert.deepEqual(compose.services.api1.command, ['serve', '--no-worker'])
    assert.deepEqual(compose.services.worker1.command, ['worker'])
    // The workers pump the events; the API containers never take the lease.
    assert.equal(compose.services.api1.environment.EVENTS_PUMP, 'false')
    assert.equal(compose.services.worker1.environment.EVENTS_PUMP, undefined)
    assert.match(compose.services.api1.healthcheck.test.join(' '), /\/readyz/)
  })

  it('runs Redis with AOF and noeviction', () => {
    const command = (compose.services.redis.command as string[]).join(' ')
    assert.match(command, /--appendonly yes/)
    assert.match(command, /--maxmemory-policy noeviction/)
  })
})
