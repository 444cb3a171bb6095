import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ReplyError } from 'ioredis'
import { UnavailableError } from '../../src/domain/errors.js'
import { redirectOf, toRedisFailure } from '../../src/redis/errors.js'

describe('toRedisFailure', () => {
  const transient = [
    'LOADING Redis is loading the dataset in memory',
    'BUSY Redis is busy running a script',
    'CLUSTERDOWN The cluster is down',
    'TRYAGAIN Multiple keys request during rehashing of slot',
    "READONLY You can't write against a read only replica.",
    'MASTERDOWN Link with MASTER is down',
    'OOM command not allowed when used memory > maxmemory',
    'NOREPLICAS Not enough good replicas to write.',
    // A Cluster's redirects, when one reaches the caller while a slot moves
    'MOVED 2284 127.0.0.1:7001',
    'ASK 2284 127.0.0.1:7002',
  ]
  for (const message of transient) {
    it(`a reply "${message.split(' ')[0]}" is the service unavailable (503, retried)`, () => {
      const failure = toRedisFailure(new ReplyError(message))
      assert.ok(failure instanceof UnavailableError)
      assert.equal(failure.service, 'redis')
    })
  }

  it('any other reply is a bug, passed on as it is', () => {
    for (const message of [
      'ERR unknown command',
      'WRONGTYPE Operation',
      'BUSYGROUP exists',
      'MOVEDX',
    ]) {
      const err = new ReplyError(message)
      assert.equal(toRedisFailure(err), err, message)
    }
  })

  it('a connection failure or a timeout is the service unavailable', () => {
    for (const err of [new Error('Connection is closed.'), new Error('Command timed out')]) {
      assert.ok(toRedisFailure(err) instanceof UnavailableError)
    }
  })
})

describe('redirectOf', () => {
  it("names a Cluster's redirect, and nothing else", () => {
    assert.equal(redirectOf(new ReplyError('MOVED 2284 127.0.0.1:7001')), 'MOVED')
    assert.equal(redirectOf(new ReplyError('ASK 2284 127.0.0.1:7002')), 'ASK')
    for (const other of [
      new ReplyError('MOVEDX'),
      new ReplyError('TRYAGAIN Multiple keys request during rehashing of slot'),
      new Error('Too many Cluster redirections. Last error: MOVED 2284 127.0.0.1:7001'),
      'MOVED 2284 127.0.0.1:7001',
      null,
    ]) {
      assert.equal(redirectOf(other), null, String(other))
    }
  })
})
