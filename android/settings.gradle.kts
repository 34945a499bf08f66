// Gradle build for real Android users (needs the Android SDK and Google's Maven, which these
// development machines do not have: here the library's logic is compiled and tested on the JVM by
// scripts/test-android).
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}
dependencyResolutionManagement {
    repositories {
        google()
        mavenCentral()
    }
}
rootProject.name = "yilian-android"
include(":yilian", ":sample")
