// The operator and agent APIs as OpenAPI 3.1, served at /api/v1/openapi.json.
// docs/openapi.json holds the same text; a test keeps the two, and the routes, in agreement.
enum OpenAPIDocument {
    static let json = #"""
{
  "openapi": "3.1.0",
  "info": {
    "title": "Flotilla fleet server",
    "version": "1",
    "description": "The agent API (/agent/v1), called by devices with their device token, and the operator API (/api/v1), called with an operator token scoped to one project. Every error is {\"error\": {\"code\", \"message\", \"field\"}}."
  },
  "paths": {
    "/agent/v1/enroll": {
      "post": {
        "operationId": "enroll",
        "summary": "Enroll a device with an enrollment token; the same hardware enrolling again is the same device.",
        "requestBody": {
          "required": true,
          "content": {
            "application/json": {
              "schema": {
                "$ref": "#/components/schemas/EnrollmentRequest"
              }
            }
          }
        },
        "responses": {
          "201": {
            "description": "A new device.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/EnrollmentResponse"
                }
              }
            }
          },
          "200": {
            "description": "The device already enrolled from this hardware.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/EnrollmentResponse"
                }
              }
            }
          },
          "400": {
            "$ref": "#/components/responses/Refused"
          },
          "403": {
            "description": "Refused: a device with this hardware id is enrolled with another device secret (device_secret_mismatch), or its identity was reset and the claim code is missing, wrong or expired (claim_code_required, claim_code_mismatch, claim_code_expired).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ErrorResponse"
                }
              }
            }
          },
          "401": {
            "$ref": "#/components/responses/Refused"
          },
          "413": {
            "$ref": "#/components/responses/Refused"
          }
        }
      }
    },
    "/agent/v1/heartbeat": {
      "post": {
        "operationId": "heartbeat",
        "summary": "Report device state; answered once the report is durable.",
        "security": [
          {
            "deviceToken": []
          }
        ],
        "requestBody": {
          "required": true,
          "content": {
            "application/json": {
              "schema": {
                "$ref": "#/components/schemas/Heartbeat"
              }
            }
          }
        },
        "responses": {
          "200": {
            "description": "Stored, or a repeated report id acknowledged again.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/HeartbeatAcknowledgement"
                }
              }
            }
          },
          "400": {
            "$ref": "#/components/responses/Refused"
          },
          "401": {
            "$ref": "#/components/responses/Refused"
          },
          "410": {
            "$ref": "#/components/responses/Refused"
          },
          "413": {
            "$ref": "#/components/responses/Refused"
          }
        }
      }
    },
    "/agent/v1/assignments": {
      "get": {
        "operationId": "assignments",
        "summary": "Long-poll for the device's unfinished executions.",
        "security": [
          {
            "deviceToken": []
          }
        ],
        "parameters": [
          {
            "name": "If-None-Match",
            "in": "header",
            "required": false,
            "schema": {
              "type": "string"
            },
            "description": "The ETag of the last answer: wait until the work differs."
          }
        ],
        "responses": {
          "200": {
            "description": "The device's work, with an ETag header.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/AssignmentList"
                }
              }
            }
          },
          "304": {
            "description": "Nothing changed within the long-poll limit."
          },
          "401": {
            "$ref": "#/components/responses/Refused"
          },
          "410": {
            "$ref": "#/components/responses/Refused"
          }
        }
      }
    },
    "/agent/v1/executions/{id}/report": {
      "post": {
        "operationId": "reportExecution",
        "summary": "Report progress or the outcome of an execution, once per report id.",
        "security": [
          {
            "deviceToken": []
          }
        ],
        "parameters": [
          {
            "name": "id",
            "in": "path",
            "required": true,
            "schema": {
              "type": "string"
            }
          }
        ],
        "requestBody": {
          "required": true,
          "content": {
            "application/json": {
              "schema": {
                "$ref": "#/components/schemas/ExecutionReport"
              }
            }
          }
        },
        "responses": {
          "200": {
            "description": "Applied, or a repeated report id.",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "reportID": {
                      "type": "string"
                    },
                    "accepted": {
                      "type": "boolean"
                    },
                    "state": {
                      "$ref": "#/components/schemas/ExecutionState"
                    }
                  },
                  "required": [
                    "reportID",
                    "accepted",
                    "state"
                  ],
                  "additionalProperties": false
                }
              }
            }
          },
          "400": {
            "$ref": "#/components/responses/Refused"
          },
          "401": {
            "$ref": "#/components/responses/Refused"
          },
          "404": {
            "$ref": "#/components/responses/Refused"
          },
          "409": {
            "$ref": "#/components/responses/Refused"
          },
          "410": {
            "$ref": "#/components/responses/Refused"
          },
          "413": {
            "$ref": "#/components/responses/Refused"
          }
        }
      }
    },
    "/api/v1/projects": {
      "get": {
        "operationId": "listProjects",
        "summary": "The token's project.",
        "security": [
          {
            "operatorToken": []
          }
        ],
        "responses": {
          "200": {
            "description": "Project names.",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "projects": {
                      "type": "array",
                      "items": {
                        "type": "string"
                      }
                    }
                  },
                  "required": [
                    "projects"
                  ],
                  "additionalProperties": false
                }
              }
            }
          },
          "401": {
            "$ref": "#/components/responses/Refused"
          }
        }
      }
    },
    "/api/v1/devices": {
      "get": {
        "operationId": "listDevices",
        "summary": "Devices of the project, filtered.",
        "security": [
          {
            "operatorToken": []
          }
        ],
        "parameters": [
          {
            "name": "selector",
            "in": "query",
            "schema": {
              "type": "string"
            },
            "description": "Label selector over tags, kubectl syntax."
          },
          {
            "name": "online",
            "in": "query",
            "schema": {
              "type": "boolean"
            }
          },
          {
            "name": "app",
            "in": "query",
            "schema": {
              "type": "string"
            }
          },
          {
            "name": "version",
            "in": "query",
            "schema": {
              "type": "string"
            },
            "description": "With app: devices running this version."
          }
        ],
        "responses": {
          "200": {
            "description": "Devices.",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "devices": {
                      "type": "array",
                      "items": {
                        "$ref": "#/components/schemas/Device"
                      }
                    }
                  },
                  "required": [
                    "devices"
                  ],
                  "additionalProperties": false
                }
              }
            }
          },
          "400": {
            "$ref": "#/components/responses/Refused"
          },
          "401": {
            "$ref": "#/components/responses/Refused"
          }
        }
      }
    },
    "/api/v1/devices/{id}": {
      "get": {
        "operationId": "getDevice",
        "summary": "One device with its recent heartbeats.",
        "security": [
          {
            "operatorToken": []
          }
        ],
        "parameters": [
          {
            "name": "id",
            "in": "path",
            "required": true,
            "schema": {
              "type": "string"
            }
          }
        ],
        "responses": {
          "200": {
            "description": "The device.",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "device": {
                      "$ref": "#/components/schemas/Device"
                    },
                    "heartbeats": {
                      "type": "array",
                      "items": {
                        "$ref": "#/components/schemas/Heartbeat"
                      }
                    }
                  },
                  "required": [
                    "device",
                    "heartbeats"
                  ],
                  "additionalProperties": false
                }
              }
            }
          },
          "401": {
            "$ref": "#/components/responses/Refused"
          },
          "404": {
            "$ref": "#/components/responses/Refused"
          }
        }
      },
      "delete": {
        "operationId": "deleteDevice",
        "summary": "Delete a device; its agent gets 410 from then on.",
        "security": [
          {
            "operatorToken": []
          }
        ],
        "parameters": [
          {
            "name": "id",
            "in": "path",
            "required": true,
            "schema": {
              "type": "string"
            }
          }
        ],
        "responses": {
          "204": {
            "description": "Deleted."
          },
          "401": {
            "$ref": "#/components/responses/Refused"
          },
          "404": {
            "$ref": "#/components/responses/Refused"
          }
        }
      }
    },
    "/api/v1/devices/{id}/reset-identity": {
      "post": {
        "operationId": "resetDeviceIdentity",
        "summary": "Revoke a device's tokens and let a replaced board take its place with a one-time claim code (audited).",
        "security": [
          {
            "operatorToken": []
          }
        ],
        "parameters": [
          {
            "name": "id",
            "in": "path",
            "required": true,
            "schema": {
              "type": "string"
            }
          }
        ],
        "responses": {
          "200": {
            "description": "Every token the device held is revoked; the board that enrolls under its hardware id with the claim code, before it expires, becomes the device.",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "device": {
                      "type": "string"
                    },
                    "hardwareID": {
                      "type": "string"
                    },
                    "claimCode": {
                      "type": "string",
                      "description": "Shown once; enroll the new board with it (claimCode in the enrollment request)."
                    },
                    "claimExpiresAt": {
                      "type": "string",
                      "format": "date-time"
                    }
                  },
                  "required": [
                    "device",
                    "hardwareID",
                    "claimCode",
                    "claimExpiresAt"
                  ],
                  "additionalProperties": false
                }
              }
            }
          },
          "400": {
            "$ref": "#/components/responses/Refused"
          },
          "401": {
            "$ref": "#/components/responses/Refused"
          },
          "404": {
            "$ref": "#/components/responses/Refused"
          }
        },
        "requestBody": {
          "required": false,
          "content": {
            "application/json": {
              "schema": {
                "type": "object",
                "properties": {
                  "claimExpiresInSeconds": {
                    "type": "integer",
                    "minimum": 60,
                    "maximum": 2592000,
                    "description": "How long the claim code is good for; a day when absent."
                  }
                },
                "additionalProperties": false
              }
            }
          }
        }
      }
    },
    "/api/v1/deployments": {
      "get": {
        "operationId": "listDeployments",
        "summary": "The project's deployments, newest first.",
        "security": [
          {
            "operatorToken": []
          }
        ],
        "responses": {
          "200": {
            "description": "Deployments.",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "deployments": {
                      "type": "array",
                      "items": {
                        "$ref": "#/components/schemas/Deployment"
                      }
                    }
                  },
                  "required": [
                    "deployments"
                  ],
                  "additionalProperties": false
                }
              }
            }
          },
          "401": {
            "$ref": "#/components/responses/Refused"
          }
        }
      },
      "post": {
        "operationId": "createDeployment",
        "summary": "Deploy an app version with its flow to a set of devices.",
        "security": [
          {
            "operatorToken": []
          }
        ],
        "requestBody": {
          "required": true,
          "content": {
            "application/json": {
              "schema": {
                "$ref": "#/components/schemas/DeploymentRequest"
              }
            }
          }
        },
        "responses": {
          "201": {
            "description": "The deployment and its queued executions.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/DeploymentDetail"
                }
              }
            }
          },
          "400": {
            "$ref": "#/components/responses/Refused"
          },
          "401": {
            "$ref": "#/components/responses/Refused"
          },
          "413": {
            "$ref": "#/components/responses/Refused"
          }
        }
      }
    },
    "/api/v1/deployments/{id}": {
      "get": {
        "operationId": "getDeployment",
        "summary": "A deployment and its executions.",
        "security": [
          {
            "operatorToken": []
          }
        ],
        "parameters": [
          {
            "name": "id",
            "in": "path",
            "required": true,
            "schema": {
              "type": "string"
            }
          }
        ],
        "responses": {
          "200": {
            "description": "The deployment.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/DeploymentDetail"
                }
              }
            }
          },
          "401": {
            "$ref": "#/components/responses/Refused"
          },
          "404": {
            "$ref": "#/components/responses/Refused"
          }
        }
      }
    },
    "/api/v1/deployments/{id}/abort": {
      "post": {
        "operationId": "abortDeployment",
        "summary": "Cancel the executions that have not finished.",
        "security": [
          {
            "operatorToken": []
          }
        ],
        "parameters": [
          {
            "name": "id",
            "in": "path",
            "required": true,
            "schema": {
              "type": "string"
            }
          }
        ],
        "responses": {
          "200": {
            "description": "The deployment after the abort.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/DeploymentDetail"
                }
              }
            }
          },
          "401": {
            "$ref": "#/components/responses/Refused"
          },
          "404": {
            "$ref": "#/components/responses/Refused"
          }
        }
      }
    },
    "/api/v1/tokens": {
      "get": {
        "operationId": "listTokens",
        "summary": "The project's tokens, without secrets.",
        "security": [
          {
            "operatorToken": []
          }
        ],
        "responses": {
          "200": {
            "description": "Tokens.",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "tokens": {
                      "type": "array",
                      "items": {
                        "$ref": "#/components/schemas/Token"
                      }
                    }
                  },
                  "required": [
                    "tokens"
                  ],
                  "additionalProperties": false
                }
              }
            }
          },
          "401": {
            "$ref": "#/components/responses/Refused"
          }
        }
      },
      "post": {
        "operationId": "createToken",
        "summary": "Make a token that never outlives the one making it; its text is shown this once.",
        "security": [
          {
            "operatorToken": []
          }
        ],
        "requestBody": {
          "required": true,
          "content": {
            "application/json": {
              "schema": {
                "$ref": "#/components/schemas/TokenRequest"
              }
            }
          }
        },
        "responses": {
          "201": {
            "description": "The token.",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "token": {
                      "type": "string"
                    },
                    "info": {
                      "$ref": "#/components/schemas/Token"
                    }
                  },
                  "required": [
                    "token",
                    "info"
                  ],
                  "additionalProperties": false
                }
              }
            }
          },
          "400": {
            "$ref": "#/components/responses/Refused"
          },
          "401": {
            "$ref": "#/components/responses/Refused"
          },
          "413": {
            "$ref": "#/components/responses/Refused"
          }
        }
      }
    },
    "/api/v1/tokens/{id}": {
      "delete": {
        "operationId": "revokeToken",
        "summary": "Revoke a token, and every token it made, at once (audited).",
        "security": [
          {
            "operatorToken": []
          }
        ],
        "parameters": [
          {
            "name": "id",
            "in": "path",
            "required": true,
            "schema": {
              "type": "string"
            },
            "description": "The token's id, as the list shows it."
          }
        ],
        "responses": {
          "200": {
            "description": "The ids revoked: the token and its heirs.",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "revoked": {
                      "type": "array",
                      "items": {
                        "type": "string"
                      }
                    }
                  },
                  "required": [
                    "revoked"
                  ],
                  "additionalProperties": false
                }
              }
            }
          },
          "401": {
            "$ref": "#/components/responses/Refused"
          },
          "404": {
            "$ref": "#/components/responses/Refused"
          }
        }
      }
    },
    "/api/v1/audit": {
      "get": {
        "operationId": "listAudit",
        "summary": "The project's audit log, newest first.",
        "security": [
          {
            "operatorToken": []
          }
        ],
        "parameters": [
          {
            "name": "limit",
            "in": "query",
            "required": false,
            "schema": {
              "type": "integer",
              "minimum": 1,
              "maximum": 10000,
              "default": 100
            }
          }
        ],
        "responses": {
          "200": {
            "description": "Entries.",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "entries": {
                      "type": "array",
                      "items": {
                        "$ref": "#/components/schemas/AuditEntry"
                      }
                    }
                  },
                  "required": [
                    "entries"
                  ],
                  "additionalProperties": false
                }
              }
            }
          },
          "400": {
            "$ref": "#/components/responses/Refused"
          },
          "401": {
            "$ref": "#/components/responses/Refused"
          }
        }
      }
    },
    "/hooks/git": {
      "post": {
        "operationId": "pushWebhook",
        "summary": "A push event for the one project the server reconciles; with several, use /hooks/git/{project}.",
        "requestBody": {
          "$ref": "#/components/requestBodies/PushEvent"
        },
        "responses": {
          "200": {
            "$ref": "#/components/responses/PushPing"
          },
          "202": {
            "$ref": "#/components/responses/ReconcileAccepted"
          },
          "401": {
            "description": "Unsigned, or the signature does not match.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ErrorResponse"
                }
              }
            }
          },
          "404": {
            "description": "No controller runs, or no webhook secret is set.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ErrorResponse"
                }
              }
            }
          },
          "413": {
            "$ref": "#/components/responses/Refused"
          }
        },
        "description": "Signed with the secret of --webhook-secret-file (FLOTILLA_WEBHOOK_SECRET)."
      }
    },
    "/api/v1/reconcile": {
      "post": {
        "operationId": "reconcile",
        "summary": "Ask the controller to poll the fleet repository and reconcile now.",
        "security": [
          {
            "operatorToken": []
          }
        ],
        "responses": {
          "200": {
            "description": "GitHub's ping, verified; nothing is fetched.",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "pong": {
                      "type": "string",
                      "const": "verified"
                    }
                  }
                }
              }
            }
          },
          "202": {
            "$ref": "#/components/responses/ReconcileAccepted"
          },
          "401": {
            "$ref": "#/components/responses/Refused"
          },
          "503": {
            "description": "The controller has not reconciled a commit yet (code not_reconciled).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ErrorResponse"
                }
              }
            }
          },
          "404": {
            "description": "No controller runs here.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ErrorResponse"
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/status": {
      "get": {
        "operationId": "controllerStatus",
        "summary": "The controller's last report: the reconciled commit, per app and target the version and device counts, drifted devices.",
        "security": [
          {
            "operatorToken": []
          }
        ],
        "responses": {
          "200": {
            "description": "The report, as status.json on the status branch.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/FleetStatus"
                }
              }
            }
          },
          "401": {
            "$ref": "#/components/responses/Refused"
          },
          "404": {
            "description": "No controller runs here.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ErrorResponse"
                }
              }
            }
          },
          "503": {
            "description": "No commit reconciled yet.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ErrorResponse"
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/apps/{app}/suspend": {
      "post": {
        "operationId": "suspendApp",
        "summary": "Hold the app's new waves, heals and rollbacks; what runs, runs on.",
        "security": [
          {
            "operatorToken": []
          }
        ],
        "parameters": [
          {
            "name": "app",
            "in": "path",
            "required": true,
            "schema": {
              "type": "string"
            }
          }
        ],
        "responses": {
          "200": {
            "description": "Suspended.",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "app": {
                      "type": "string"
                    },
                    "state": {
                      "type": "string"
                    }
                  }
                }
              }
            }
          },
          "400": {
            "$ref": "#/components/responses/Refused"
          },
          "401": {
            "$ref": "#/components/responses/Refused"
          },
          "503": {
            "description": "The controller has not reconciled a commit yet (code not_reconciled).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ErrorResponse"
                }
              }
            }
          },
          "404": {
            "description": "No controller runs here.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ErrorResponse"
                }
              }
            }
          }
        }
      }
    },
    "/api/v1/apps/{app}/resume": {
      "post": {
        "operationId": "resumeApp",
        "summary": "Let a suspended app's rollouts go on.",
        "security": [
          {
            "operatorToken": []
          }
        ],
        "parameters": [
          {
            "name": "app",
            "in": "path",
            "required": true,
            "schema": {
              "type": "string"
            }
          }
        ],
        "responses": {
          "200": {
            "description": "Resumed.",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "app": {
                      "type": "string"
                    },
                    "state": {
                      "type": "string"
                    }
                  }
                }
              }
            }
          },
          "400": {
            "$ref": "#/components/responses/Refused"
          },
          "401": {
            "$ref": "#/components/responses/Refused"
          },
          "503": {
            "description": "The controller has not reconciled a commit yet (code not_reconciled).",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ErrorResponse"
                }
              }
            }
          },
          "404": {
            "description": "No controller runs here.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ErrorResponse"
                }
              }
            }
          }
        }
      }
    },
    "/hooks/git/{project}": {
      "post": {
        "operationId": "projectPushWebhook",
        "summary": "A push event from GitHub, GitLab or Gitea/Forgejo for one project of serve --config; verified with that project's webhook secret before anything is fetched.",
        "requestBody": {
          "$ref": "#/components/requestBodies/PushEvent"
        },
        "responses": {
          "200": {
            "$ref": "#/components/responses/PushPing"
          },
          "202": {
            "$ref": "#/components/responses/ReconcileAccepted"
          },
          "401": {
            "description": "Unsigned, or the signature does not match — also the answer for a project that does not exist or has no webhook secret, so the hook does not tell which projects run here.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/ErrorResponse"
                }
              }
            }
          },
          "413": {
            "$ref": "#/components/responses/Refused"
          }
        },
        "parameters": [
          {
            "name": "project",
            "in": "path",
            "required": true,
            "description": "The project, as serve --config names it.",
            "schema": {
              "type": "string",
              "maxLength": 63
            }
          }
        ],
        "description": "Signed with the project's webhookSecretFile of serve --config."
      }
    },
    "/api/v1/secrets": {
      "get": {
        "operationId": "listSecrets",
        "summary": "The project's secrets: names, versions, who set them when — never values.",
        "security": [
          {
            "operatorToken": []
          }
        ],
        "responses": {
          "200": {
            "description": "The secrets, by name.",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "secrets": {
                      "type": "array",
                      "items": {
                        "$ref": "#/components/schemas/Secret"
                      }
                    }
                  },
                  "required": [
                    "secrets"
                  ],
                  "additionalProperties": false
                }
              }
            }
          },
          "401": {
            "$ref": "#/components/responses/Refused"
          }
        }
      }
    },
    "/api/v1/secrets/{name}": {
      "parameters": [
        {
          "name": "name",
          "in": "path",
          "required": true,
          "schema": {
            "type": "string",
            "maxLength": 63,
            "pattern": "^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"
          },
          "description": "The secret's name, as a flow parameter of type secret names it."
        }
      ],
      "put": {
        "operationId": "setSecret",
        "summary": "Set a secret's value (audited); sealed with the server's secret key and never returned.",
        "security": [
          {
            "operatorToken": []
          }
        ],
        "requestBody": {
          "required": true,
          "content": {
            "application/json": {
              "schema": {
                "type": "object",
                "properties": {
                  "value": {
                    "type": "string",
                    "minLength": 1,
                    "description": "1 byte to 64 KiB of UTF-8, without NUL."
                  }
                },
                "required": [
                  "value"
                ],
                "additionalProperties": false
              }
            }
          }
        },
        "responses": {
          "200": {
            "description": "Replaced: the new version.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Secret"
                }
              }
            }
          },
          "201": {
            "description": "Set for the first time.",
            "content": {
              "application/json": {
                "schema": {
                  "$ref": "#/components/schemas/Secret"
                }
              }
            }
          },
          "400": {
            "$ref": "#/components/responses/Refused"
          },
          "401": {
            "$ref": "#/components/responses/Refused"
          },
          "503": {
            "$ref": "#/components/responses/Refused"
          }
        }
      },
      "delete": {
        "operationId": "deleteSecret",
        "summary": "Delete a secret (audited); an execution not yet taken that needs it is cancelled, saying why.",
        "security": [
          {
            "operatorToken": []
          }
        ],
        "responses": {
          "200": {
            "description": "Deleted.",
            "content": {
              "application/json": {
                "schema": {
                  "type": "object",
                  "properties": {
                    "name": {
                      "type": "string"
                    },
                    "state": {
                      "const": "deleted"
                    }
                  },
                  "required": [
                    "name",
                    "state"
                  ],
                  "additionalProperties": false
                }
              }
            }
          },
          "401": {
            "$ref": "#/components/responses/Refused"
          },
          "404": {
            "$ref": "#/components/responses/Refused"
          }
        }
      }
    }
  },
  "components": {
    "securitySchemes": {
      "deviceToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT"
      },
      "operatorToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "flo_<id>_<secret>"
      }
    },
    "responses": {
      "Refused": {
        "description": "The request was refused; the body says why and, where one is to blame, which field.",
        "content": {
          "application/json": {
            "schema": {
              "$ref": "#/components/schemas/ErrorResponse"
            }
          }
        }
      },
      "PushPing": {
        "description": "GitHub's ping, verified; nothing is fetched.",
        "content": {
          "application/json": {
            "schema": {
              "type": "object",
              "properties": {
                "pong": {
                  "type": "string",
                  "const": "verified"
                }
              }
            }
          }
        }
      },
      "ReconcileAccepted": {
        "description": "Accepted: requested — the controller polls the repository now; ignored (push webhooks only) — not a push to the watched branch, and reason says why.",
        "content": {
          "application/json": {
            "schema": {
              "type": "object",
              "properties": {
                "reconcile": {
                  "type": "string",
                  "enum": [
                    "requested",
                    "ignored"
                  ]
                },
                "reason": {
                  "type": "string"
                }
              }
            }
          }
        }
      }
    },
    "schemas": {
      "FleetStatus": {
        "type": "object",
        "required": [
          "commit",
          "head",
          "headErrors",
          "apps"
        ],
        "properties": {
          "commit": {
            "type": "string",
            "description": "The commit whose desired state is in force."
          },
          "head": {
            "type": "string",
            "description": "The branch head; differs from commit when the head does not validate."
          },
          "headErrors": {
            "type": "array",
            "items": {
              "type": "string"
            }
          },
          "apps": {
            "type": "array",
            "items": {
              "type": "object",
              "properties": {
                "name": {
                  "type": "string"
                },
                "error": {
                  "type": "string",
                  "description": "Why the app could not be reconciled on the last pass; absent when all went well."
                },
                "drifted": {
                  "type": "array",
                  "items": {
                    "type": "string"
                  }
                },
                "targets": {
                  "type": "array",
                  "items": {
                    "type": "object",
                    "properties": {
                      "group": {
                        "type": "string"
                      },
                      "version": {
                        "type": "string"
                      },
                      "devices": {
                        "type": "integer"
                      },
                      "converged": {
                        "type": "integer"
                      },
                      "updating": {
                        "type": "integer"
                      },
                      "failed": {
                        "type": "integer"
                      },
                      "offline": {
                        "type": "integer",
                        "description": "Devices that still need the version and are offline: they wait, never failures."
                      },
                      "reason": {
                        "type": "string",
                        "description": "Why nothing starts now, when something holds the target."
                      },
                      "state": {
                        "type": "string",
                        "enum": [
                          "converged",
                          "updating",
                          "aborted",
                          "failed",
                          "suspended",
                          "drifted"
                        ]
                      }
                    }
                  }
                }
              }
            }
          }
        }
      },
      "ErrorResponse": {
        "type": "object",
        "properties": {
          "error": {
            "type": "object",
            "properties": {
              "code": {
                "type": "string"
              },
              "message": {
                "type": "string"
              },
              "field": {
                "type": "string"
              }
            },
            "required": [
              "code",
              "message"
            ],
            "additionalProperties": false
          }
        },
        "required": [
          "error"
        ],
        "additionalProperties": false
      },
      "EnrollmentRequest": {
        "type": "object",
        "properties": {
          "token": {
            "type": "string"
          },
          "hardwareID": {
            "type": "string",
            "maxLength": 256
          },
          "deviceSecret": {
            "type": "string",
            "minLength": 16,
            "maxLength": 256
          },
          "name": {
            "type": "string"
          },
          "tags": {
            "type": "object",
            "additionalProperties": {
              "type": "string"
            }
          },
          "attributes": {
            "type": "object",
            "additionalProperties": {
              "type": "string"
            }
          },
          "claimCode": {
            "type": "string",
            "minLength": 1,
            "maxLength": 128,
            "description": "The one-time code from resetting this hardware's identity: lets a replaced board, with a new device secret, take the device's place."
          }
        },
        "required": [
          "token",
          "hardwareID",
          "deviceSecret"
        ],
        "additionalProperties": false
      },
      "EnrollmentResponse": {
        "type": "object",
        "properties": {
          "deviceID": {
            "type": "string"
          },
          "project": {
            "type": "string"
          },
          "deviceToken": {
            "type": "string"
          },
          "heartbeatIntervalSeconds": {
            "type": "integer"
          }
        },
        "required": [
          "deviceID",
          "project",
          "deviceToken",
          "heartbeatIntervalSeconds"
        ],
        "additionalProperties": false
      },
      "InstalledApp": {
        "type": "object",
        "properties": {
          "version": {
            "type": "string"
          },
          "digest": {
            "type": "string"
          }
        },
        "required": [
          "version"
        ],
        "additionalProperties": false
      },
      "Heartbeat": {
        "type": "object",
        "properties": {
          "reportID": {
            "type": "string",
            "maxLength": 128
          },
          "sentAtMilliseconds": {
            "type": "integer"
          },
          "cpuPercent": {
            "type": "number",
            "minimum": 0,
            "maximum": 100
          },
          "memory": {
            "type": "object",
            "properties": {
              "usedBytes": {
                "type": "integer"
              },
              "totalBytes": {
                "type": "integer"
              }
            },
            "required": [
              "usedBytes",
              "totalBytes"
            ],
            "additionalProperties": false
          },
          "disks": {
            "type": "array",
            "items": {
              "type": "object",
              "properties": {
                "mount": {
                  "type": "string"
                },
                "usedBytes": {
                  "type": "integer"
                },
                "totalBytes": {
                  "type": "integer"
                }
              },
              "required": [
                "mount",
                "usedBytes",
                "totalBytes"
              ],
              "additionalProperties": false
            }
          },
          "uptimeSeconds": {
            "type": "integer"
          },
          "load": {
            "type": "array",
            "items": {
              "type": "number"
            }
          },
          "processes": {
            "type": "array",
            "items": {
              "type": "object",
              "properties": {
                "name": {
                  "type": "string"
                },
                "running": {
                  "type": "boolean"
                }
              },
              "required": [
                "name",
                "running"
              ],
              "additionalProperties": false
            }
          },
          "custom": {
            "type": "object",
            "additionalProperties": {
              "type": "string"
            }
          },
          "apps": {
            "type": "object",
            "additionalProperties": {
              "$ref": "#/components/schemas/InstalledApp"
            }
          },
          "agentVersion": {
            "type": "string"
          },
          "executing": {
            "type": "string",
            "description": "The execution the agent works on, if any (resumed after a restart included)."
          }
        },
        "required": [
          "reportID"
        ],
        "additionalProperties": false
      },
      "HeartbeatAcknowledgement": {
        "type": "object",
        "properties": {
          "reportID": {
            "type": "string"
          },
          "accepted": {
            "type": "boolean"
          },
          "heartbeatIntervalSeconds": {
            "type": "integer"
          }
        },
        "required": [
          "reportID",
          "accepted",
          "heartbeatIntervalSeconds"
        ],
        "additionalProperties": false
      },
      "AssignedStep": {
        "type": "object",
        "properties": {
          "name": {
            "type": "string"
          },
          "kind": {
            "enum": [
              "run",
              "script",
              "download",
              "compose",
              "install"
            ]
          },
          "command": {
            "type": "string"
          },
          "url": {
            "type": "string"
          },
          "sha256": {
            "type": "string"
          },
          "destination": {
            "type": "string"
          },
          "project": {
            "type": "string"
          },
          "file": {
            "type": "string"
          },
          "action": {
            "type": "string"
          },
          "timeoutSeconds": {
            "type": "integer"
          },
          "retries": {
            "type": "integer"
          },
          "onFailure": {
            "type": "string"
          },
          "idempotent": {
            "type": "boolean"
          }
        },
        "required": [
          "name",
          "kind",
          "timeoutSeconds",
          "retries",
          "onFailure",
          "idempotent"
        ],
        "additionalProperties": false
      },
      "Assignment": {
        "type": "object",
        "properties": {
          "executionID": {
            "type": "string"
          },
          "deploymentID": {
            "type": "string"
          },
          "app": {
            "type": "string"
          },
          "version": {
            "type": "string"
          },
          "digest": {
            "type": "string"
          },
          "steps": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/AssignedStep"
            }
          },
          "rollback": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/AssignedStep"
            }
          },
          "artifactAllowlist": {
            "type": "array",
            "items": {
              "type": "string"
            }
          }
        },
        "required": [
          "executionID",
          "deploymentID",
          "app",
          "version",
          "digest",
          "steps",
          "rollback",
          "artifactAllowlist"
        ],
        "additionalProperties": false
      },
      "AssignmentList": {
        "type": "object",
        "properties": {
          "assignments": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/Assignment"
            }
          }
        },
        "required": [
          "assignments"
        ],
        "additionalProperties": false
      },
      "ExecutionState": {
        "enum": [
          "queued",
          "assigned",
          "running",
          "succeeded",
          "failed",
          "timedOut",
          "cancelled"
        ]
      },
      "StepResult": {
        "type": "object",
        "properties": {
          "index": {
            "type": "integer"
          },
          "name": {
            "type": "string"
          },
          "status": {
            "enum": [
              "succeeded",
              "failed",
              "skipped"
            ]
          },
          "rollback": {
            "type": "boolean"
          },
          "attempts": {
            "type": "integer"
          },
          "exitCode": {
            "type": "integer"
          },
          "outputTail": {
            "type": "string",
            "maxLength": 16384
          }
        },
        "required": [
          "index",
          "name",
          "status",
          "rollback",
          "attempts"
        ],
        "additionalProperties": false
      },
      "ExecutionReport": {
        "type": "object",
        "properties": {
          "reportID": {
            "type": "string",
            "maxLength": 128
          },
          "state": {
            "enum": [
              "running",
              "succeeded",
              "failed"
            ]
          },
          "step": {
            "$ref": "#/components/schemas/StepResult"
          },
          "message": {
            "type": "string"
          }
        },
        "required": [
          "reportID",
          "state"
        ],
        "additionalProperties": false
      },
      "Device": {
        "type": "object",
        "properties": {
          "id": {
            "type": "string"
          },
          "name": {
            "type": "string"
          },
          "project": {
            "type": "string"
          },
          "hardwareID": {
            "type": "string"
          },
          "tags": {
            "type": "object",
            "additionalProperties": {
              "type": "string"
            }
          },
          "attributes": {
            "type": "object",
            "additionalProperties": {
              "type": "string"
            }
          },
          "apps": {
            "type": "object",
            "additionalProperties": {
              "$ref": "#/components/schemas/InstalledApp"
            }
          },
          "online": {
            "type": "boolean"
          },
          "enrolledAt": {
            "type": "string",
            "format": "date-time"
          },
          "lastHeartbeatAt": {
            "type": "string",
            "format": "date-time"
          }
        },
        "required": [
          "id",
          "name",
          "project",
          "hardwareID",
          "tags",
          "attributes",
          "apps",
          "online",
          "enrolledAt"
        ],
        "additionalProperties": false
      },
      "DeploymentRequest": {
        "type": "object",
        "properties": {
          "app": {
            "type": "string"
          },
          "version": {
            "type": "string"
          },
          "flow": {
            "type": "string"
          },
          "digest": {
            "type": "string"
          },
          "parameters": {
            "type": "object",
            "additionalProperties": {
              "type": "string"
            }
          },
          "secrets": {
            "type": "object",
            "description": "Parameters of type secret: each with the name of a secret of the project (PUT /api/v1/secrets/{name}). Used only in run and script steps.",
            "additionalProperties": {
              "type": "string"
            }
          },
          "steps": {
            "type": "array",
            "minItems": 1,
            "items": {
              "$ref": "#/components/schemas/AssignedStep"
            }
          },
          "rollback": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/AssignedStep"
            }
          },
          "artifactAllowlist": {
            "type": "array",
            "items": {
              "type": "string"
            }
          },
          "devices": {
            "type": "array",
            "minItems": 1,
            "items": {
              "type": "string"
            }
          }
        },
        "required": [
          "app",
          "version",
          "flow",
          "steps",
          "devices"
        ],
        "additionalProperties": false
      },
      "Deployment": {
        "type": "object",
        "properties": {
          "id": {
            "type": "string"
          },
          "project": {
            "type": "string"
          },
          "app": {
            "type": "string"
          },
          "version": {
            "type": "string"
          },
          "flow": {
            "type": "string"
          },
          "digest": {
            "type": "string"
          },
          "parameters": {
            "type": "object",
            "additionalProperties": {
              "type": "string"
            }
          },
          "secrets": {
            "type": "object",
            "description": "Parameters of type secret: each with the name of the project's secret whose value fills it in. Only the device gets the value, inside its assignment; no answer ever holds it.",
            "additionalProperties": {
              "type": "string"
            }
          },
          "steps": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/AssignedStep"
            }
          },
          "rollback": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/AssignedStep"
            }
          },
          "artifactAllowlist": {
            "type": "array",
            "items": {
              "type": "string"
            }
          },
          "createdAt": {
            "type": "string",
            "format": "date-time"
          },
          "createdBy": {
            "type": "string"
          },
          "purpose": {
            "type": "string",
            "description": "Why it exists: manual (an operator's), rollout, heal, or rollback:<digest of the aborted rollout>.",
            "pattern": "^(manual|rollout|heal|rollback:.+)$"
          },
          "group": {
            "type": "string",
            "description": "The target group a controller deployment is for."
          },
          "aborted": {
            "type": "boolean",
            "description": "Its rollout was aborted; a superseded deployment has its executions cancelled but is not aborted."
          }
        },
        "required": [
          "id",
          "project",
          "app",
          "version",
          "flow",
          "digest",
          "parameters",
          "steps",
          "rollback",
          "artifactAllowlist",
          "createdAt",
          "createdBy",
          "purpose",
          "aborted"
        ],
        "additionalProperties": false
      },
      "Execution": {
        "type": "object",
        "properties": {
          "id": {
            "type": "string"
          },
          "deploymentID": {
            "type": "string"
          },
          "deviceID": {
            "type": "string"
          },
          "state": {
            "$ref": "#/components/schemas/ExecutionState"
          },
          "results": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/StepResult"
            }
          },
          "message": {
            "type": "string"
          },
          "updatedAt": {
            "type": "string",
            "format": "date-time"
          },
          "takenAt": {
            "type": "string",
            "format": "date-time",
            "description": "When the device took it; its execution timeout counts from here."
          },
          "revision": {
            "type": "integer"
          }
        },
        "required": [
          "id",
          "deploymentID",
          "deviceID",
          "state",
          "results",
          "updatedAt",
          "revision"
        ],
        "additionalProperties": false
      },
      "DeploymentDetail": {
        "type": "object",
        "properties": {
          "deployment": {
            "$ref": "#/components/schemas/Deployment"
          },
          "executions": {
            "type": "array",
            "items": {
              "$ref": "#/components/schemas/Execution"
            }
          }
        },
        "required": [
          "deployment",
          "executions"
        ],
        "additionalProperties": false
      },
      "TokenRequest": {
        "type": "object",
        "properties": {
          "kind": {
            "enum": [
              "enrollment",
              "operator"
            ]
          },
          "group": {
            "type": "string",
            "description": "Enrollment tokens only: devices enrolled with it get the tag group=<group>."
          },
          "expiresInSeconds": {
            "type": "integer",
            "minimum": 1,
            "maximum": 315360000,
            "description": "At most ten years, and never past the expiry of the token making it; without it, the new token expires with that token (or never, when that token never does)."
          }
        },
        "required": [
          "kind"
        ],
        "additionalProperties": false
      },
      "Token": {
        "type": "object",
        "properties": {
          "id": {
            "type": "string"
          },
          "kind": {
            "enum": [
              "enrollment",
              "operator"
            ]
          },
          "group": {
            "type": "string"
          },
          "createdAt": {
            "type": "string",
            "format": "date-time"
          },
          "expiresAt": {
            "type": "string",
            "format": "date-time"
          },
          "revoked": {
            "type": "boolean"
          },
          "createdBy": {
            "type": "string",
            "description": "The operator token that made this one through the API; revoking that one revokes this one."
          }
        },
        "required": [
          "id",
          "kind",
          "createdAt",
          "revoked"
        ],
        "additionalProperties": false
      },
      "AuditEntry": {
        "type": "object",
        "properties": {
          "at": {
            "type": "string",
            "format": "date-time"
          },
          "actor": {
            "type": "string",
            "description": "operator:<token id>, token:<enrollment token id>, or cli."
          },
          "action": {
            "type": "string"
          },
          "subject": {
            "type": "string"
          },
          "detail": {
            "type": "string"
          }
        },
        "required": [
          "at",
          "actor",
          "action",
          "subject",
          "detail"
        ],
        "additionalProperties": false
      },
      "Secret": {
        "type": "object",
        "description": "What is known of a secret; never its value.",
        "properties": {
          "name": {
            "type": "string"
          },
          "version": {
            "type": "integer",
            "minimum": 1
          },
          "updatedAt": {
            "type": "string",
            "format": "date-time"
          },
          "updatedBy": {
            "type": "string"
          }
        },
        "required": [
          "name",
          "version",
          "updatedAt",
          "updatedBy"
        ],
        "additionalProperties": false
      }
    },
    "requestBodies": {
      "PushEvent": {
        "required": true,
        "content": {
          "application/json": {
            "schema": {
              "type": "object"
            }
          }
        },
        "description": "Signed with the server's webhook secret: GitHub X-Hub-Signature-256 (sha256=HMAC-SHA256 of the body), Gitea X-Gitea-Signature or Forgejo X-Forgejo-Signature (HMAC-SHA256 of the body, hex), GitLab X-Gitlab-Token (the secret itself). A verified push to the watched branch asks the controller to poll now; a push to another ref, or another event (X-GitHub-Event, X-Gitea-Event, X-Forgejo-Event, X-Gitlab-Event), is acknowledged and ignored; GitHub's ping is answered. A delivery whose body has no ref is taken as a push."
      }
    }
  }
}
"""#
}
