// Package uuid makes random (version 4) UUIDs, for new domains and new
// repositories. Checking and canonicalising the UUID forms Oracle VM wrote
// is the repository package's (CheckUUID, CanonicalUUID). It imports
// nothing of the project.
package uuid
