"""N-body: a few bodies under gravity, stepped with pairwise float arithmetic on lists."""


def make_system(count):
    """A heavy central body and `count - 1` light ones on staggered orbits, with no
    total momentum (positions, velocities: lists of [x, y, z]; masses: a list)."""
    positions = [[0.0, 0.0, 0.0]]
    velocities = [[0.0, 0.0, 0.0]]
    masses = [40.0]
    for k in range(1, count):
        radius = 1.5 * k
        speed = (masses[0] / radius) ** 0.5
        sign = 1.0 if k % 2 else -1.0
        positions.append([sign * radius, 0.1 * k, -0.05 * k])
        velocities.append([0.02 * k, sign * speed, 0.01 * sign])
        masses.append(0.01 * k)
    for axis in range(3):
        momentum = 0.0
        for k in range(1, count):
            momentum += velocities[k][axis] * masses[k]
        velocities[0][axis] = -momentum / masses[0]
    return positions, velocities, masses


def advance(positions, velocities, masses, dt, steps):
    count = len(masses)
    for _ in range(steps):
        for i in range(count - 1):
            pi = positions[i]
            vi = velocities[i]
            mi = masses[i]
            for j in range(i + 1, count):
                pj = positions[j]
                vj = velocities[j]
                dx = pi[0] - pj[0]
                dy = pi[1] - pj[1]
                dz = pi[2] - pj[2]
                distance_squared = dx * dx + dy * dy + dz * dz
                magnitude = dt / (distance_squared * distance_squared ** 0.5)
                mj = masses[j] * magnitude
                vi[0] -= dx * mj
                vi[1] -= dy * mj
                vi[2] -= dz * mj
                mi_scaled = mi * magnitude
                vj[0] += dx * mi_scaled
                vj[1] += dy * mi_scaled
                vj[2] += dz * mi_scaled
        for i in range(count):
            p = positions[i]
            v = velocities[i]
            p[0] += dt * v[0]
            p[1] += dt * v[1]
            p[2] += dt * v[2]


def energy(positions, velocities, masses):
    count = len(masses)
    total = 0.0
    for i in range(count):
        v = velocities[i]
        total += 0.5 * masses[i] * (v[0] * v[0] + v[1] * v[1] + v[2] * v[2])
        for j in range(i + 1, count):
            dx = positions[i][0] - positions[j][0]
            dy = positions[i][1] - positions[j][1]
            dz = positions[i][2] - positions[j][2]
            total -= masses[i] * masses[j] / (dx * dx + dy * dy + dz * dz) ** 0.5
    return total


def simulate(count, steps):
    positions, velocities, masses = make_system(count)
    before = energy(positions, velocities, masses)
    advance(positions, velocities, masses, 0.001, steps)
    return before, energy(positions, velocities, masses)


MAIN = "simulate"
ARGS = (5, 2_000)
