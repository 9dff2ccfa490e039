// Test-time only (the evaluator is AGPL and is never shipped or bundled): decides a batch of AWS requests
// against IAM policies with @cloud-copilot/iam-simulate, in one process per test session.
//
// stdin:  {"policies": {"<name>": <policy document>}, "requests": [{"id", "principal", "action", "resource",
//          "accountId", "context": {key: value|[values]}, "identityPolicies": ["<name>"], "resourcePolicy": "<name>"|null}]}
// stdout: [{"id", "result": "Allowed"|"ImplicitlyDenied"|"ExplicitlyDenied"|"Error", "deciding": [...], "errors"}]
import { getDenialReasons, getGrantReasons, runSimulation } from '@cloud-copilot/iam-simulate'

async function readStdin() {
  const chunks = []
  for await (const chunk of process.stdin) chunks.push(chunk)
  return JSON.parse(Buffer.concat(chunks).toString('utf8'))
}

async function decide(batch, request) {
  const policy = (name) => {
    if (!(name in batch.policies)) throw new Error(`unknown policy ${name}`)
    return batch.policies[name]
  }
  const simulation = {
    request: {
      principal: request.principal,
      action: request.action,
      resource: { resource: request.resource, accountId: request.accountId },
      contextVariables: request.context || {},
    },
    identityPolicies: request.identityPolicies.map((name) => ({ name, policy: policy(name) })),
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: request.resourcePolicy ? policy(request.resourcePolicy) : undefined,
  }
  const response = await runSimulation(simulation, { simulationMode: 'Strict' })
  if (response.resultType === 'error') {
    return { id: request.id, result: 'Error', deciding: [], errors: response.errors }
  }
  const results = response.resultType === 'single' ? [response.result] : response.results
  const deciding = []
  for (const r of results) {
    if (!r.analysis) continue
    const reasons = response.overallResult === 'Allowed' ? getGrantReasons(r.analysis) : getDenialReasons(r.analysis)
    deciding.push(...reasons)
  }
  return { id: request.id, result: response.overallResult, deciding, errors: null }
}

const batch = await readStdin()
const out = []
for (const request of batch.requests) {
  try {
    out.push(await decide(batch, request))
  } catch (err) {
    out.push({ id: request.id, result: 'Error', deciding: [], errors: String(err && err.stack ? err.stack : err) })
  }
}
process.stdout.write(JSON.stringify(out))
